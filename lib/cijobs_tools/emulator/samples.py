"""Realistic ``JobsDetail`` trees built from the documentation samples in ``data/``.

``data/<Tag>.xml`` are the ``JobsDetail`` elements of Tencent's doc samples
(the seed's transcode job with its stray ``</Message>`` repaired to
``<Message/>``, the per-type callback samples, the VideoTag sample with its
unclosed ``<Tag>`` repaired). A job is rendered from its tag's sample with its own
JobId, State, Code/Message, times and Progress; result elements (MediaInfo,
MediaResult, ``*Result``) only appear once the job is ``Success``.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Optional
from xml.etree.ElementTree import Element, SubElement

import defusedxml.ElementTree as DET

TAGS = (
    "Transcode", "Snapshot", "SuperResolution", "MediaInfo", "SpeechRecognition", "PicProcess",
    "StreamExtract", "SmartCover", "VideoMontage", "Tts", "Translation", "ExtractDigitalWatermark",
    "WordsGeneralize", "VideoTag",
)
CST = timezone(timedelta(hours=8))
PROGRESS = {"Submitted": "0", "Running": "50", "Pause": "0", "Success": "100"}
_RESULT_NAMES = ("MediaInfo", "MediaResult")
_templates: dict[tuple[str, bool], Element] = {}
_lock = threading.Lock()


def template(tag: str, pretty: bool = False) -> Element:
    """The parsed sample for ``tag`` (falls back to Transcode's shape for tags without a sample).

    Compact by default, as CI sends its XML (no whitespace between tags: see the byte-exact callbacks
    ``callback-TaskFinish-workflow-SuperResolution.xml`` and ``callback-WorkflowFinish.xml`` in the
    spec fixtures); ``pretty`` keeps the docs' indentation.
    """
    name = tag if tag in TAGS else "Transcode"
    with _lock:
        el = _templates.get((name, pretty))
        if el is None:
            text = resources.files("cijobs_tools.emulator").joinpath("data").joinpath(f"{name}.xml").read_bytes()
            el = DET.fromstring(text)
            if not pretty:
                _compact(el)
            _templates[(name, pretty)] = el
        return el


def _compact(root: Element) -> None:
    """Drop whitespace-only text and tails (the indentation), in place."""
    for el in root.iter():
        if el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None


def tag_for_id(job_id: str) -> str:
    """A deterministic tag for an ID (auto-jobs): the family letter first, then a hash."""
    if job_id.startswith("a"):
        return "Translation" if int(hashlib.sha1(job_id.encode()).hexdigest(), 16) % 2 else "WordsGeneralize"  # noqa: S324
    if job_id.startswith("c"):
        return "PicProcess"
    if job_id.startswith("s"):
        return "SpeechRecognition"
    media = [t for t in TAGS if t not in ("Translation", "WordsGeneralize", "PicProcess", "SpeechRecognition")]
    return media[int(hashlib.sha1(job_id.encode()).hexdigest(), 16) % len(media)]  # noqa: S324


def fmt_time(ts: Optional[float]) -> str:
    """CI's job time format ``2022-06-27T15:23:12+0800``; ``-`` when not set."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, CST).strftime("%Y-%m-%dT%H:%M:%S%z")


def _set(parent: Element, name: str, value: str, index: Optional[int] = None) -> None:
    el = parent.find(name)
    if el is None:
        el = Element(name)
        if index is None:
            parent.append(el)
        else:
            parent.insert(min(index, len(parent)), el)
    el.text = value


def _strip_results(jd: Element) -> None:
    op = jd.find("Operation")
    if op is None:
        return
    for child in list(op):
        if child.tag in _RESULT_NAMES or child.tag.endswith("Result"):
            op.remove(child)


def render(
    job_id: str,
    tag: str,
    state: str,
    created: float,
    started: Optional[float],
    ended: Optional[float],
    code: str = "Success",
    message: str = "",
    progress: Optional[str] = None,
    pretty: bool = False,
    queue_id: Optional[str] = None,
) -> Element:
    """A ``JobsDetail`` element for one job (compact XML unless ``pretty``, see :func:`template`)."""
    jd = copy.deepcopy(template(tag, pretty))
    _set(jd, "Code", code, 0)
    _set(jd, "Message", message, 1)
    _set(jd, "JobId", job_id, 2)
    _set(jd, "State", state, 3)
    prog = progress if progress is not None else PROGRESS.get(state)
    existing = jd.find("Progress")
    if prog is None:
        if existing is not None:
            jd.remove(existing)
    else:
        _set(jd, "Progress", prog, 4)
    _set(jd, "CreationTime", fmt_time(created))
    _set(jd, "StartTime", fmt_time(started))
    _set(jd, "EndTime", fmt_time(ended))
    _set(jd, "Tag", tag)
    if queue_id is not None:
        _set(jd, "QueueId", queue_id)
    elif jd.find("QueueId") is None:
        SubElement(jd, "QueueId").text = "p2242ab62c7c94486915508540933a2c6"
    if state != "Success":
        _strip_results(jd)
    return jd
