"""What the function checks at cold start, checked by ``cijobs deploy`` on the values it would deploy.

:func:`check_function_settings` runs the same validation :func:`cijobs.app.build_app` runs when an
SCF instance starts (``Settings.from_env``, the CI target, the sinks of ``RESULT_SINK`` with their
claim-check store, the pending registry) on the environment the deploy would set, so that a setting
the function would refuse is refused before it is deployed. It builds clients but sends nothing:
client construction opens no connection and credentials are read only when a request is signed (the
credentials source given here refuses to be read, so a check that would sign fails loudly instead of
reaching the network).

On top of that it refuses what only matters on SCF: ``file://`` stores are directories in the
instance's ``/tmp``, which is private to one instance and lost with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from cijobs.credentials import Credentials
from cijobs.settings import Settings

FILE_STORE_SETTINGS = ("RESULT_SINK", "PENDING_STORE", "CLAIM_CHECK_STORE")
CMQ_SCHEMES = ("cmq-queue://", "cmq-topic://")


class FunctionSettingsError(ValueError):
    """The function would refuse (or silently lose data with) these settings; the message names the variable."""


def _no_credentials() -> Credentials:
    raise FunctionSettingsError("the deploy check must not sign requests")  # pragma: no cover - guard


def _urls(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def refuse_file_stores(env_vars: Mapping[str, str]) -> None:
    """``file://`` in RESULT_SINK, PENDING_STORE or CLAIM_CHECK_STORE cannot work on SCF."""
    for name in FILE_STORE_SETTINGS:
        for url in _urls(env_vars.get(name) or ""):
            if url.startswith("file://"):
                raise FunctionSettingsError(
                    f"{name} {url!r}: a file:// store is a directory in the SCF instance's /tmp, private to "
                    "one instance and lost when it is recycled; on SCF use cos://BUCKET-APPID.REGION/PREFIX"
                )
    if not (env_vars.get("PENDING_STORE") or "").strip():
        raise FunctionSettingsError(
            "PENDING_STORE is not set: the default file:///tmp/cijobs/pending is lost with the SCF instance; "
            "set PENDING_STORE=cos://BUCKET-APPID.REGION/PREFIX"
        )
    if not (env_vars.get("RESULT_SINK") or "").strip():
        raise FunctionSettingsError(
            "RESULT_SINK is not set: the default file:///tmp/cijobs/results is lost with the SCF instance; "
            "set RESULT_SINK to cos://…, cmq-queue://… or cmq-topic://…"
        )


def refuse_cmq_without_endpoint(env_vars: Mapping[str, str], settings: Settings) -> None:
    """A CMQ sink in data-flow mode needs CMQ_ENDPOINT (the function refuses to start without it)."""
    cmq = [u for u in _urls(env_vars.get("RESULT_SINK") or "") if u.startswith(CMQ_SCHEMES)]
    if cmq and settings.cmq_mode == "dataflow" and not settings.cmq_endpoint:
        raise FunctionSettingsError(
            f"RESULT_SINK {cmq[0]!r} needs CMQ_ENDPOINT (CMQ_MODE=dataflow): export CMQ_ENDPOINT with the HTTP "
            "access address of the TDMQ CMQ cluster from the console (e.g. http://gz.mqadapter.cmq.tencentyun.com) "
            "before `cijobs deploy`; template.yaml reads it as ${env:CMQ_ENDPOINT:-}"
        )


def check_function_settings(env_vars: Mapping[str, str]) -> Settings:
    """Validate ``env_vars`` as the function will at cold start, plus the SCF-only rules; return the settings.

    Raises :class:`FunctionSettingsError` or the function's own error (``SettingsError``,
    ``SinkConfigError``, ``CmqConfigError``, ``ValueError`` from store URLs), each naming the variable.
    """
    from cijobs.pending import build_pending_store
    from cijobs.sinks import build_sinks

    refuse_file_stores(env_vars)
    settings = Settings.from_env(env_vars)
    settings.require_ci_target()
    refuse_cmq_without_endpoint(env_vars, settings)
    build_sinks(settings, _no_credentials)  # RESULT_SINK, key template, CLAIM_CHECK_STORE, CMQ settings
    build_pending_store(settings, _no_credentials)  # PENDING_STORE
    return settings
