import pytest

from cijobs.credentials import CredentialsError, from_env
from cijobs.settings import SETTINGS, Settings, SettingsError


def test_defaults_are_safe():
    s = Settings.from_env({})
    assert s.allow_unauthenticated is False
    assert s.trust_callback_body is False
    assert s.ci_concurrency == 16
    assert s.api_token is None


def test_values_are_parsed_and_validated():
    s = Settings.from_env({"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou",
                           "CI_CONCURRENCY": "8", "ALLOW_UNAUTHENTICATED": "true"})
    assert (s.ci_bucket, s.ci_region, s.ci_concurrency, s.allow_unauthenticated) == (
        "examplebucket-1250000000", "ap-guangzhou", 8, True)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"CI_BUCKET": "evil.com/x"}, "CI_BUCKET"),
        ({"CI_REGION": "ap-guangzhou.evil.com"}, "CI_REGION"),
        ({"CI_CONCURRENCY": "zero"}, "CI_CONCURRENCY"),
        ({"CI_CONCURRENCY": "1000"}, "CI_CONCURRENCY"),
        ({"RESULT_SINK": "s3://bucket"}, "RESULT_SINK"),
        ({"ALLOW_UNAUTHENTICATED": "maybe"}, "ALLOW_UNAUTHENTICATED"),
        ({"CI_ENDPOINT": "ftp://x"}, "CI_ENDPOINT"),
    ],
)
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_secrets_not_in_repr():
    s = Settings.from_env({"API_TOKEN": "tok-very-secret-0123", "CMQ_SECRET_KEY": "cmq-very-secret"})
    assert "very-secret" not in repr(s)


def test_every_setting_has_docs_and_unique_names():
    names = [s.env for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.doc for s in SETTINGS)


def test_credentials_missing_names_variables_and_hides_values():
    with pytest.raises(CredentialsError) as err:
        from_env({"TENCENTCLOUD_SECRETKEY": "abcdefgh"})
    assert "TENCENTCLOUD_SECRETID" in str(err.value)
    assert "abcdefgh" not in str(err.value)
    c = from_env({"TENCENTCLOUD_SECRETID": "AKIDx", "TENCENTCLOUD_SECRETKEY": "sk-1234",
                  "TENCENTCLOUD_SESSIONTOKEN": "tok-5678"})
    assert "sk-1234" not in repr(c) and "tok-5678" not in repr(c)


# -- a result-sink prefix that gives unusable keys (moved from the review-fixes file) ----------------------
@pytest.mark.parametrize("url", ["cos://examplebucket-1250000000.ap-guangzhou/.pending",
                                 "cos://examplebucket-1250000000.ap-guangzhou/results/.hidden",
                                 "file:///tmp/x,cos://examplebucket-1250000000.ap-guangzhou/.pending"])
def test_a_result_sink_prefix_that_gives_unusable_keys_fails_at_startup(url):
    from cijobs.credentials import Credentials
    from cijobs.sinks import build_sinks

    with pytest.raises(SettingsError, match="RESULT_SINK") as exc:
        settings = Settings.from_env({"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou",
                                      "RESULT_SINK": url})
        build_sinks(settings, lambda: Credentials("AKID", "k"))
    assert ".pending" in str(exc.value) or ".hidden" in str(exc.value)
