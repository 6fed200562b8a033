"""The SCF Cloud API (version 2018-04-16) through ``tencentcloud-sdk-python-scf``.

The SDK is imported inside :func:`sdk_caller`, never at module import: only
``cijobs deploy`` needs it and it is not in the SCF zip. The ``Credential``
is built explicitly from SCF-style variables (``TENCENTCLOUD_SECRETID``,
``TENCENTCLOUD_SECRETKEY``, ``TENCENTCLOUD_SESSIONTOKEN``): the SDK's own
environment provider reads other names and no token.
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Callable, Optional

from cijobs.credentials import Credentials

SIGN_METHOD = "TC3-HMAC-SHA256"
ApiCall = Callable[[str, dict[str, Any]], dict[str, Any]]


class DeployError(RuntimeError):
    """Deployment cannot go on; the message says which step and why (never a secret)."""


class ScfApiError(DeployError):
    """The SCF API answered with an error."""

    def __init__(self, action: str, code: str, message: str, request_id: Optional[str]) -> None:
        super().__init__(f"{action} failed: {code}: {message} (RequestId {request_id or '-'})")
        self.action = action
        self.code = code
        self.message = message
        self.request_id = request_id

    @property
    def not_found(self) -> bool:
        return self.code.startswith("ResourceNotFound")


def sdk_caller(credentials: Credentials, region: str, endpoint: Optional[str] = None) -> ApiCall:
    """A function ``call(action, params) -> response dict`` backed by the real SDK client.

    Request parameters go through the SDK's typed request models; a parameter
    name the model does not know is refused before anything is sent.
    """
    try:
        from tencentcloud.common import credential
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.scf.v20180416 import models, scf_client
    except ImportError:  # pragma: no cover - depends on the installation
        raise DeployError("cijobs deploy needs the Tencent Cloud SDK: pip install 'cijobs[deploy]'") from None

    http = HttpProfile()
    if endpoint:
        http.endpoint = endpoint
    client = scf_client.ScfClient(
        credential.Credential(credentials.secret_id, credentials.secret_key, credentials.token),
        region,
        # TC3-HMAC-SHA256 (JSON body up to ~10 MB) rather than HmacSHA1/256 (1 MB): the zip goes inline.
        ClientProfile(signMethod=SIGN_METHOD, httpProfile=http),
    )

    def call(action: str, params: dict[str, Any]) -> dict[str, Any]:
        request_cls = getattr(models, action + "Request", None)
        method = getattr(client, action, None)
        if request_cls is None or method is None:
            raise DeployError(f"the installed SCF SDK has no {action} action")
        request = request_cls()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            request._deserialize(params)
        unknown = [str(w.message) for w in caught if "useless" in str(w.message)]
        if unknown:
            raise DeployError(f"{action}: parameters unknown to the SDK model: {'; '.join(unknown)}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # newer response fields than this SDK knows
                response = method(request)
        except TencentCloudSDKException as exc:
            raise ScfApiError(action, str(exc.code), str(exc.message), exc.requestId) from None
        result: dict[str, Any] = json.loads(response.to_json_string())
        return result

    return call
