"""The unsigned ``/_emu/...`` control API (JSON), for tests, benches and soaks that run the emulator in
another process. Never subject to faults.

=====  =========================  ===========================================================
GET    /_emu/health               ``{"ok": true}``
GET    /_emu/stats                request counts per side and status, injected faults, sizes
POST   /_emu/reset                forget jobs, objects, messages, stats, faults
GET    /_emu/ci/jobs              ``{"jobs": [{job_id, tag, state, queries, ...}]}``
POST   /_emu/ci/jobs              ``{"jobs": [{"job_id", "tag"?, "state"?, "finish_after"?, "final_state"?}]}``
POST   /_emu/ci/catalog           ``{"jobs": [{"job_id", "tag"?, "state"?, "created"?, "queue_id"?, ...}]}``
                                  -> ``{"added": n}`` (see ``CIStore.load_catalog``)
POST   /_emu/ci/state             ``{"job_id", "state", "code"?, "message"?}``
POST   /_emu/ci/advance           ``{"probability"?: 1.0}`` -> ``{"moved": n}``
POST   /_emu/ci/finish_after      ``{"job_id", "n_queries", "state"?}``
POST   /_emu/ci/config            ``{"auto_jobs"?: bool, "finish_probability"?: p, "pretty_xml"?: bool,
                                  "list_bounds"?: "exclusive"|"inclusive", "list_requires_queue"?: bool}``
GET    /_emu/ci/requests?limit=N  the last N CI requests (path, ids, status)
GET    /_emu/faults               global + per-side settings and injected counts
POST   /_emu/faults[/<side>]      set settings, e.g. ``{"fail_rate": 0.2, "latency_ms": 5}``
GET    /_emu/limits               per-account request caps ``{"ci_max_rps": r|null, "cos_max_rps": r|null}``
POST   /_emu/limits               set them (same shape; null = no cap; the buckets start full again)
GET    /_emu/cos/objects?bucket=&prefix=   objects with size, etag, put count and body MD5s
GET    /_emu/cos/object?bucket=&key=       the raw object body
GET    /_emu/cmq/messages?name=            received CMQ messages
POST   /_emu/webhooks/<name>      configure a webhook receiver: ``{"secrets"?, "statuses"?, "status"?,
                                  "location"?, "retry_after"?, "latency_ms"?, "tolerance_s"?, "answer"?}``
GET    /_emu/webhooks/<name>/deliveries  what ``POST /_emu/webhook/<name>`` received (headers, body, answer)
=====  =========================  ===========================================================
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

from .ci import LIST_BOUNDS, JobStateError
from .faults import FaultConfigError
from .wire import JSON, Request, Response

if TYPE_CHECKING:
    from .instance import Emulator


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _ok(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), {}, JSON,
                    server="cijobs-emulator")


class Control:
    def __init__(self, emu: Emulator) -> None:
        self._emu = emu
        self._routes: dict[tuple[str, str], Callable[[Request, Any], Any]] = {
            ("GET", "health"): lambda r, b: {"ok": True},
            ("GET", "stats"): lambda r, b: self._emu.snapshot_stats(),
            ("POST", "reset"): self._reset,
            ("GET", "ci/jobs"): lambda r, b: {"jobs": [j.as_dict() for j in list(self._emu.ci.jobs.values())]},
            ("POST", "ci/jobs"): self._add_jobs,
            ("POST", "ci/catalog"): self._catalog,
            ("POST", "ci/state"): self._set_state,
            ("POST", "ci/advance"): lambda r, b: {"moved": self._emu.ci.advance(float(b.get("probability", 1.0)))},
            ("POST", "ci/finish_after"): self._finish_after,
            ("POST", "ci/config"): self._ci_config,
            ("GET", "ci/requests"): self._ci_requests,
            ("GET", "faults"): lambda r, b: self._emu.faults.as_dict(),
            ("POST", "faults"): self._faults,
            ("GET", "limits"): lambda r, b: self._limits_view(),
            ("POST", "limits"): self._set_limits,
            ("GET", "cos/objects"): self._cos_objects,
            ("GET", "cmq/messages"): self._cmq_messages,
        }

    def handle(self, req: Request) -> Response:
        route = req.path[len("/_emu/"):].strip("/")
        try:
            if req.method == "GET" and route == "cos/object":
                return self._cos_object(req)
            if route.startswith("webhooks/"):
                return _ok(self._webhooks(req, route[len("webhooks/"):]))
            side = ""
            if route.startswith("faults/"):
                route, side = "faults", route[len("faults/"):]
            fn = self._routes.get((req.method, route))
            if fn is None:
                raise ControlError(404, f"no control route {req.method} /_emu/{route}")
            body = self._json(req)
            if side:
                body = {"__side": side, **body}
            return _ok(fn(req, body))
        except ControlError as e:
            return _ok({"error": str(e)}, e.status)
        except (JobStateError, FaultConfigError, ValueError, TypeError) as e:
            return _ok({"error": str(e)}, 400)
        except KeyError as e:
            return _ok({"error": f"unknown: {e}"}, 404)

    @staticmethod
    def _json(req: Request) -> dict[str, Any]:
        if not req.body:
            return {}
        try:
            data = json.loads(req.body)
        except ValueError as e:
            raise ControlError(400, f"body is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise ControlError(400, "body must be a JSON object")
        return data

    def _reset(self, req: Request, body: dict[str, Any]) -> Any:
        self._emu.reset()
        return {"ok": True}

    def _add_jobs(self, req: Request, body: dict[str, Any]) -> Any:
        jobs = body.get("jobs", [body] if "job_id" in body else [])
        if not isinstance(jobs, list) or not jobs:
            raise ControlError(400, "expected {\"jobs\": [{\"job_id\": ...}, ...]}")
        added = []
        for j in jobs:
            rec = self._emu.ci.add_job(
                str(j["job_id"]), tag=str(j.get("tag", "Transcode")), state=str(j.get("state", "Running")),
                finish_after=j.get("finish_after"), final_state=str(j.get("final_state", "Success")),
            )
            added.append(rec.as_dict())
        return {"jobs": added}

    def _catalog(self, req: Request, body: dict[str, Any]) -> Any:
        jobs = body.get("jobs")
        if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
            raise ControlError(400, "expected {\"jobs\": [{\"job_id\": ..., \"created\": ...}, ...]}")
        return {"added": len(self._emu.ci.load_catalog(jobs))}

    def _set_state(self, req: Request, body: dict[str, Any]) -> Any:
        self._emu.ci.set_state(str(body["job_id"]), str(body["state"]), body.get("code"), body.get("message"))
        return self._emu.ci.jobs[str(body["job_id"])].as_dict()

    def _finish_after(self, req: Request, body: dict[str, Any]) -> Any:
        self._emu.ci.finish_after(str(body["job_id"]), int(body["n_queries"]), str(body.get("state", "Success")))
        return self._emu.ci.jobs[str(body["job_id"])].as_dict()

    def _ci_config(self, req: Request, body: dict[str, Any]) -> Any:
        if "auto_jobs" in body:
            self._emu.ci.auto_jobs = bool(body["auto_jobs"])
        if "finish_probability" in body:
            p = float(body["finish_probability"])
            if not 0.0 <= p <= 1.0:
                raise ControlError(400, "finish_probability must be within 0..1")
            self._emu.ci.finish_probability = p
        if "pretty_xml" in body:
            self._emu.ci.pretty_xml = bool(body["pretty_xml"])
        if "list_bounds" in body:
            if body["list_bounds"] not in LIST_BOUNDS:
                raise ControlError(400, f"list_bounds must be one of {', '.join(LIST_BOUNDS)}")
            self._emu.ci.list_bounds = str(body["list_bounds"])
        if "list_requires_queue" in body:
            self._emu.ci.list_requires_queue = bool(body["list_requires_queue"])
        return {"auto_jobs": self._emu.ci.auto_jobs, "finish_probability": self._emu.ci.finish_probability,
                "pretty_xml": self._emu.ci.pretty_xml, "list_bounds": self._emu.ci.list_bounds,
                "list_requires_queue": self._emu.ci.list_requires_queue}

    def _ci_requests(self, req: Request, body: dict[str, Any]) -> Any:
        limit = int(req.query.get("limit", "100"))
        reqs = list(self._emu.ci.requests)[-limit:] if limit > 0 else []
        return {"requests": [{"method": r.method, "path": r.path, "ids": r.ids, "status": r.status} for r in reqs],
                "total": len(self._emu.ci.requests)}

    def _faults(self, req: Request, body: dict[str, Any]) -> Any:
        side = body.pop("__side", None)
        self._emu.faults.update(body, side=side)
        return self._emu.faults.as_dict()

    def _limits_view(self) -> dict[str, Any]:
        return {f"{side}_max_rps": b.max_rps for side, b in self._emu.limits.items()}

    def _set_limits(self, req: Request, body: dict[str, Any]) -> Any:
        known = {f"{side}_max_rps": side for side in self._emu.limits}
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise ControlError(400, f"unknown limit(s) {unknown} (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for name, value in body.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ControlError(400, f"{name} must be a number > 0 or null, got {value!r}")
            values[known[name]] = None if value is None else float(value)
        for side, value in values.items():
            self._emu.limits[side].set_rate(value)
        return self._limits_view()

    def _cos_objects(self, req: Request, body: dict[str, Any]) -> Any:
        bucket = req.query.get("bucket")
        prefix = req.query.get("prefix", "")
        cos = self._emu.cos
        out = []
        for (b, k), obj in sorted(dict(cos.objects).items()):
            if (bucket and b != bucket) or not k.startswith(prefix):
                continue
            out.append({"bucket": b, "key": k, "size": obj.size, "etag": obj.etag, "headers": obj.headers,
                        "puts": cos.put_counts.get((b, k), 0), "body_md5s": list(cos.put_bodies.get((b, k), []))})
        return {"objects": out}

    def _cos_object(self, req: Request) -> Response:
        bucket, key = req.query.get("bucket", ""), req.query.get("key", "")
        obj = self._emu.cos.get(bucket, key)
        if obj is None:
            raise ControlError(404, f"no object {bucket}/{key}")
        return Response(200, obj.body, {}, obj.headers.get("content-type", "application/octet-stream"),
                        server="cijobs-emulator")

    def _webhooks(self, req: Request, rest: str) -> Any:
        name, _, what = rest.partition("/")
        hooks = self._emu.webhooks
        if req.method == "POST" and name and not what:
            body = self._json(req)
            known = {"secrets", "statuses", "status", "location", "retry_after", "latency_ms", "tolerance_s",
                     "answer"}
            unknown = sorted(set(body) - known)
            if unknown:
                raise ControlError(400, f"unknown webhook setting(s) {unknown} (known: {', '.join(sorted(known))})")
            return hooks.configure(name, **body).as_dict()
        if req.method == "GET" and name and what == "deliveries":
            return {"deliveries": [d.as_dict() for d in hooks.deliveries(name)]}
        raise ControlError(404, f"no control route {req.method} /_emu/webhooks/{rest}")

    def _cmq_messages(self, req: Request, body: dict[str, Any]) -> Any:
        name = req.query.get("name")
        msgs = list(self._emu.cmq.messages)
        return {"messages": [m.as_dict() for m in msgs if not name or m.name == name]}
