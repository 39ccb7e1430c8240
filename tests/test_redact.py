"""What the manifest records of a command line, a URL and a judge: secrets masked, everything else kept."""

from __future__ import annotations

import pytest

from sfteval.harness.redact import MASK, is_secret_name, redact_argv, redact_url, redact_value

SECRET = "sk-s3cr3t-value"


@pytest.mark.parametrize("argv, expected", [
    (["--api-key", SECRET], ["--api-key", MASK]),
    (["--api-key=" + SECRET], ["--api-key=" + MASK]),
    (["--judge-api-key", SECRET], ["--judge-api-key", MASK]),
    (["-o", "api_key=" + SECRET], ["-o", "api_key=" + MASK]),
    (["--backend-option=api_key=" + SECRET], ["--backend-option=api_key=" + MASK]),
    (["-o", "access_token=" + SECRET], ["-o", "access_token=" + MASK]),
    (["--hf-token", SECRET], ["--hf-token", MASK]),
    (["--token", SECRET], ["--token", MASK]),
    (["--auth=" + SECRET], ["--auth=" + MASK]),
    (["--password", SECRET], ["--password", MASK]),
    (["-o", "client_secret=" + SECRET], ["-o", "client_secret=" + MASK]),
])
def test_secret_option_values_are_masked(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(["sfteval", "run", *argv, "--quiet"]) == ["sfteval", "run", *expected, "--quiet"]


@pytest.mark.parametrize("argv", [
    ["--max-new-tokens", "32"],
    ["--tokenizer", "./tok"],
    ["-o", "score_batch_tokens=4096"],
    ["-o", "max_tokens_param=max_completion_tokens"],
    ["--api-key-env", "MY_KEY_VAR"],
    ["--judge-api-key-env=MY_KEY_VAR"],
    ["--think-markers", "<think>,</think>"],
    ["--temperature", "-1"],
    ["--base-url", "http://127.0.0.1:8000/v1?model=m"],
])
def test_ordinary_options_are_kept(argv: list[str]) -> None:
    assert redact_argv(["sfteval", "run", *argv]) == ["sfteval", "run", *argv]


@pytest.mark.parametrize("url, expected", [
    (f"http://u:{SECRET}@h:8000/v1", f"http://u:{MASK}@h:8000/v1"),
    (f"https://{SECRET}@h/v1", f"https://{MASK}@h/v1"),  # a user name alone is often the token
    (f"http://h/v1?api-key={SECRET}&model=m", f"http://h/v1?api-key={MASK}&model=m"),
    (f"http://h/v1?api_key={SECRET}", f"http://h/v1?api_key={MASK}"),
    (f"http://h/v1?key={SECRET}", f"http://h/v1?key={MASK}"),
    (f"http://h/v1?access_token={SECRET}", f"http://h/v1?access_token={MASK}"),
    (f"https://acct.blob/x?sv=2021&sig={SECRET}", f"https://acct.blob/x?sv=2021&sig={MASK}"),
    ("http://h:8000/v1?model=m&tokens=5", "http://h:8000/v1?model=m&tokens=5"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
])
def test_url_credentials_are_masked(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_urls_in_any_argument_are_redacted() -> None:
    argv = ["--base-url", f"http://u:{SECRET}@h/v1", f"--judge-base-url=http://x:{SECRET}@h",
            "-o", f'engine_args={{"url": "http://a:{SECRET}@h"}}', f"http://h/?token={SECRET}"]
    out = redact_argv(argv)
    assert not any(SECRET in a for a in out), out
    assert out[:2] == ["--base-url", f"http://u:{MASK}@h/v1"] and out[2] == f"--judge-base-url=http://x:{MASK}@h"


def test_recorded_settings_mask_secret_keys_and_urls() -> None:
    settings = {"api_key_source": "env:MY_VAR", "hf_token": SECRET, "nested": [{"url": f"http://u:{SECRET}@h"}],
                "max_tokens": 5}
    out = redact_value(settings)
    assert out == {"api_key_source": "env:MY_VAR", "hf_token": MASK, "nested": [{"url": f"http://u:{MASK}@h"}],
                   "max_tokens": 5}


@pytest.mark.parametrize("name, secret", [
    ("api_key", True), ("x-api-key", True), ("--hf-token", True), ("authorization", True), ("passwd", True),
    ("max_new_tokens", False), ("tokenizer", False), ("score_batch_tokens", False), ("api_key_env", False),
    ("keep_think", False), ("monkey", False), ("eos_token", False), ("pad-token", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_judge_manifest_entry_keeps_no_secret() -> None:
    from sfteval.judges.config import load_judge_config

    from sfteval.harness.judging.spec import JudgeSpec

    cfg = load_judge_config("alignbench-zh")
    spec = JudgeSpec(config="alignbench-zh", model="judge", base_url=f"http://u:{SECRET}@h/v1?api-key={SECRET}",
                     options={"api_key": SECRET, "max_tokens": 512, "proxy": f"http://p:{SECRET}@proxy"})
    entry = spec.manifest_entry(cfg, 1)
    assert SECRET not in repr(entry)
    assert entry["base_url"] == f"http://u:{MASK}@h/v1?api-key={MASK}"
    assert entry["options"] == {"max_tokens": 512, "proxy": f"http://p:{MASK}@proxy"}
