"""Secret files and secret content never leave the machine: packing and staging refuse them.

The secrets are assembled at run time, so this file itself holds none a scanner would flag.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robotrain.errors import UserError
from robotrain.payload import checked_files, pack
from robotrain.payload_secrets import AllowedSecret, allowed_secrets, content_scanner
from robotrain.platforms.local_datasets import stage_dataset
from robotrain.settings import ProjectConfig
from robotrain.testing import assert_one_line_error, make_project, run_cli


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _alnum(
    seed: str, length: int, alphabet: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
) -> str:
    digest = hashlib.sha512(seed.encode()).digest() * 4
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
HEX = "0123456789abcdef"
VALUES = {
    "aws": "AKIA" + _alnum("aws", 16, UPPER),
    "github": "ghp" + "_" + _alnum("github", 36),
    "slack": "xox" + "b-" + "1234567890-" + _alnum("slack", 24, "abcdefghijklmnopqrstuvwxyz0123456789"),
    "stripe": "sk" + "_live_" + _alnum("stripe", 24),
    "jwt": f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': '1234567890'})}.{_alnum('jwt', 43)}",
    "basic": "s3cr3t" + _alnum("basic", 10),
    "entropy": base64.b64encode(hashlib.sha256(b"entropy").digest()).decode(),
    "openai": "sk-" + _alnum("oa1", 20) + "T3Blbk" + "FJ" + _alnum("oa2", 20),
    "azure": base64.b64encode(hashlib.sha512(b"azure").digest()).decode(),
    "password": "Pa55-" + _alnum("password", 14),
    "unicode": "Geheim-" + _alnum("unicode", 12),
    "pypi": "pypi-AgEIcHlwaS5vcmc" + _alnum("pypi", 80),
    "twilio": "SK" + _alnum("twilio", 32, HEX),
    "sendgrid": "SG." + _alnum("sg1", 22) + "." + _alnum("sg2", 43),
    "key_body": _alnum("rsa", 64),
    "named": "named-file-" + _alnum("named", 16),
    "outside": "outside-" + _alnum("outside", 16),
}
CONTENT = {
    # (file, content, the line the secret is on)
    "config.py": ("LEARNING_RATE = 3e-4\nBATCH_SIZE = 64\nAWS_KEY_ID = '{aws}'\nEPOCHS = 10\n", 3),
    "notes.txt": (
        "setup notes\n-----BEGIN RSA PRIVATE KEY-----\n{key_body}\n-----END RSA PRIVATE KEY-----\n",
        2,
    ),
    "scripts/ci.sh": ("#!/bin/bash\nexport GH={github}\n", 2),
    "hooks.yml": ("notify:\n  url: https://hooks.example.com\n  bot: {slack}\n", 3),
    "billing.js": ("const plan = 'pro';\nconst stripeKey = '{stripe}';\n", 2),
    "auth.txt": ("bearer {jwt}\n", 1),
    "db.py": ("DB = 'postgres://admin:{basic}@db.example.com:5432/prod'\n", 1),
    "constants.py": ("SIGNING = '{entropy}'\n", 1),
    "llm.py": ("OPENAI_KEY = '{openai}'\n", 1),
    "storage.cfg": ("[blob]\nconnection = DefaultEndpointsProtocol=https;AccountKey={azure}\n", 2),
    "login.py": ("user = 'robot'\npassword = '{password}'\n", 2),
    "notas.py": ("# configuración\ncontraseña = '{unicode}'\n", 2),
    "upload.sh": ("twine upload -p {pypi} dist/*\n", 1),
    "sms.py": ("TWILIO = '{twilio}'\n", 1),
    "mail.py": ("SENDGRID = '{sendgrid}'\n", 1),
    # read as detect-secrets' YAML and INI transformers read them: values need no quotes
    "deploy.yaml": ("service:\n  replicas: 2\n  signing: {entropy}\n", 3),
    "app.ini": ("[service]\nreplicas = 2\nsigning = {azure}\n", 3),
    "runtime.txt": ("SIGNING={entropy}\n", 1),
}
NAMED = [
    "secrets.json",
    "service-account.json",
    "secrets.yaml",
    ".kube/config",
    "gcloud/application_default_credentials.json",
    "prod.tfvars",
    ".npmrc",
    "token.txt",
]


def plant(root: Path, outside: Path) -> list[str]:
    """Plant every kind of secret under ``root``; return what the refusal must name (``path:line``)."""
    expected = []
    for name, (template, line) in CONTENT.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**VALUES), encoding="utf-8")
        expected.append(f"{name}:{line} (")
    for name in NAMED:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"value = {VALUES['named']}\n")
        expected.append(f"{name} (secret file name)")
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "id.txt").write_text(VALUES["outside"])
    (root / "leak.txt").symlink_to(outside / "id.txt")
    expected.append("leak.txt (symlink out of the folder")
    (root / "train.py").write_text("print('training')\n")
    return expected


def assert_names_all(message: str, root: Path, expected: list[str]) -> None:
    assert "\n" not in message
    shown = os.path.relpath(root)
    for item in expected:
        assert f"{shown}/{item}" in message, f"{item} not named in {message}"
    for value in VALUES.values():
        assert value not in message


def assert_no_value_under(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for key, value in VALUES.items():
                assert value.encode() not in data, f"the {key} secret reached {path}"


def test_at_least_fifteen_kinds_are_planted() -> None:
    assert len(CONTENT) + len(NAMED) + 1 >= 15


def test_packing_refuses_and_names_every_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "src" / "training"
    expected = plant(root, tmp_path / "elsewhere")
    with pytest.raises(UserError) as refused:
        pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    message = str(refused.value)
    assert message.startswith(f"refusing to pack: {len(expected)} possible secrets found: ")
    assert "add them to .amlignore" in message and "allow-secrets" in message
    assert_names_all(message, root, expected)
    assert not (tmp_path / "out").exists()
    assert_no_value_under(tmp_path / "cache")


def test_the_refusal_is_the_same_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "training"
    plant(root, tmp_path / "elsewhere")
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.utime(path, (1_600_000_000, 1_600_000_000))
    messages = []
    for _ in range(2):
        with pytest.raises(UserError) as refused:
            pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
        messages.append(str(refused.value))
    assert messages[0] == messages[1]


OLD = 1_600_000_000
PACK_AGAIN = """
import sys
from pathlib import Path
from robotrain.errors import UserError
from robotrain.payload import pack
root, work = Path(sys.argv[1]), Path(sys.argv[2])
try:
    print(pack({"training": root}, work / "out", cache_dir=work / "cache").sha256)
except UserError as error:
    print(error)
print("scanned" if "detect_secrets" in sys.modules else "not scanned")
"""


def pack_in_a_new_process(root: Path, work: Path) -> list[str]:
    command = [sys.executable, "-c", PACK_AGAIN, str(root), str(work)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()


def test_touched_files_keep_their_verdict_without_a_scan(tmp_path: Path) -> None:
    root = tmp_path / "training"
    root.mkdir()
    (root / "config.py").write_text(f"AWS_KEY_ID = '{VALUES['aws']}'\n")
    (root / "model.py").write_text("x = 1\n")
    for path in root.iterdir():
        os.utime(path, (OLD, OLD))
    first = pack_in_a_new_process(root, tmp_path)
    for path in root.iterdir():
        os.utime(path, (OLD + 10, OLD + 10))  # touched (or checked out again): same content
    again = pack_in_a_new_process(root, tmp_path)
    assert first[0].startswith("refusing to pack: 1 possible secret") and first[1] == "scanned"
    assert again == [first[0], "not scanned"]


def test_a_secret_written_into_a_cached_file_is_found(tmp_path: Path) -> None:
    root = tmp_path / "training"
    root.mkdir()
    model = root / "model.py"
    model.write_text("x = 1\n")
    os.utime(model, (OLD, OLD))
    pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    model.write_text(f"AWS_KEY_ID = '{VALUES['aws']}'\n")
    os.utime(model, (OLD, OLD))  # the same mtime: the content hash tells
    with pytest.raises(UserError, match="refusing to pack: 1 possible secret"):
        pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")


SCAN_ALL = """
import sys
{prelude}
from pathlib import Path
from robotrain.errors import UserError
from robotrain.payload import pack
try:
    pack({{"training": Path(sys.argv[1])}}, Path(sys.argv[2]))
except UserError as error:
    print(error)
print("urllib3" in sys.modules)
"""


def test_the_scan_finds_the_same_without_importing_requests(tmp_path: Path) -> None:
    """detect-secrets imports requests only to verify over the network: the scan leaves it unimported."""
    root = tmp_path / "training"
    plant(root, tmp_path / "elsewhere")
    outputs = []
    for prelude in ("", "import requests"):
        code = SCAN_ALL.format(prelude=prelude)
        command = [sys.executable, "-c", code, str(root), str(tmp_path / f"out{len(outputs)}")]
        outputs.append(
            subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
        )
    (lean, lean_loaded), (usual, usual_loaded) = outputs
    assert lean.startswith("refusing to pack: ") and lean == usual
    assert (lean_loaded, usual_loaded) == ("False", "True")


PLACEHOLDER = """
import sys
from robotrain.payload_secrets import _requests_on_first_use
with _requests_on_first_use():
    import requests
    annotation = requests.Response
    print("urllib3" in sys.modules)
    get = requests.get  # any other attribute: the real requests
    print("urllib3" in sys.modules)
import requests as after
print(get is after.get, hasattr(after, "__file__"))
"""


def test_requests_is_imported_on_first_use() -> None:
    result = subprocess.run([sys.executable, "-c", PLACEHOLDER], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True", "True", "True"]


def test_one_unusable_widened_pattern_sends_the_prefilter_back_to_checking_each() -> None:
    """The prefilter compiles all widened patterns at once; one RE2 refuses, or one matching an empty
    line (every line a candidate), makes that fail, and each is then checked on its own."""
    import re2  # type: ignore[import-untyped]  # no stubs

    from robotrain.payload_secrets import _prefilter, _usable

    options = re2.Options()
    good, empty, refused = r"(?m)AKIA[0-9A-Z]{16}", r"(?m)x*", r"(?m)(a)\1"
    assert _prefilter([good], options) is not None
    assert _prefilter([good, empty], options) is None and _prefilter([good, refused], options) is None
    assert [_usable(wide) for wide in (good, empty, refused)] == [True, False, False]


def test_prefilter_finds_what_detect_secrets_finds_line_by_line(tmp_path: Path) -> None:
    """The fast scan against detect-secrets' own full scan, on the planted files and core's sources."""
    from detect_secrets.core.scan import scan_file

    root = tmp_path / "training"
    plant(root, tmp_path / "elsewhere")
    sources = Path(__file__).resolve().parents[1] / "src" / "robotrain"
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()] + sorted(sources.rglob("*.py"))
    scanner = content_scanner()
    for path in files:
        full = {(s.line_number, s.type) for s in scan_file(str(path))}
        fast = set(scanner.scan_file(path, [path.read_bytes()]))
        assert fast == full, path
    assert sum(bool(scanner.scan_file(p, [p.read_bytes()])) for p in files) >= len(CONTENT)


def test_secrets_split_across_read_chunks_are_found(tmp_path: Path) -> None:
    path = tmp_path / "big.py"
    filler = "x = 1\n" * 200_000  # 1.2 MB: streamed in 256 KiB blocks
    path.write_text(filler + f"AWS = '{VALUES['aws']}'\n")
    data = path.read_bytes()
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert content_scanner().scan_file(path, chunks) == [(200_001, "AWS Access Key")]


def test_allowed_secrets_are_packed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "training"
    (root / "fixtures").mkdir(parents=True)
    (root / "fixtures" / "secrets.json").write_text('{"token": "dummy"}\n')
    (root / "config.py").write_text(f"AWS = '{VALUES['aws']}'\n")
    (tmp_path / "robotrain.toml").write_text(
        '[[allow-secrets]]\npath = "training/fixtures"\nreason = "test fixtures"\n'
        '[[allow-secrets]]\npath = "training/config.py"\nreason = "the documented example key"\n'
    )
    allowed = allowed_secrets(ProjectConfig.find(tmp_path, None))
    payload = pack({"training": root}, tmp_path / "out", allow=allowed)
    assert set(payload.files) == {"training/config.py", "training/fixtures/secrets.json"}


def test_a_symlink_out_of_the_folder_cannot_be_allowed(tmp_path: Path) -> None:
    root = tmp_path / "training"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("x")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(UserError, match=r"symlink out of the folder, to .*outside\.txt.*cannot be allowed"):
        pack({"training": root}, tmp_path / "out", allow=(AllowedSecret(root / "link.txt", "please"),))


def test_symlinks_inside_the_folder_are_packed(tmp_path: Path) -> None:
    root = tmp_path / "training"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.py").write_text("a = 1\n")
    (root / "alias.py").symlink_to(root / "real" / "a.py")
    (root / "folder-alias").symlink_to(root / "real")
    assert pack({"training": root}, tmp_path / "out").files == ("training/alias.py", "training/real/a.py")


def test_ignored_secrets_are_left_out_without_a_word(tmp_path: Path) -> None:
    root = tmp_path / "training"
    root.mkdir()
    (root / "secrets.json").write_text("{}")
    (root / ".amlignore").write_text("secrets.json\n")
    (root / ".env").write_text(f"AWS={VALUES['aws']}\n")
    (root / "train.py").write_text("print(1)\n")
    assert pack({"training": root}, tmp_path / "out").files == ("training/.amlignore", "training/train.py")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ('allow-secrets = "x"', "allow-secrets must be a list"),
        ("allow-secrets = [{reason = 'r'}]", 'needs path = "FILE OR FOLDER"'),
        ("allow-secrets = [{path = 'a.json'}]", "the entry for 'a.json' needs reason"),
        ("allow-secrets = [{path = 'a.json', reason = ' '}]", "the entry for 'a.json' needs reason"),
    ],
)
def test_bad_allow_secrets_is_one_line(tmp_path: Path, config: str, fragment: str) -> None:
    project = make_project(tmp_path / "project", config + "\n")
    assert_one_line_error(run_cli(["train", "--dry-run"], cwd=project), "robotrain.toml", fragment)


def test_cli_dry_run_refuses_and_writes_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    expected = plant(project / "src" / "training", tmp_path / "elsewhere")
    result = run_cli(["train", "--dry-run"], cwd=project)
    line = assert_one_line_error(result, "refusing to pack")
    assert result.stdout == ""
    for item in expected:
        assert f"src/training/{item}" in line
    for value in VALUES.values():
        assert value not in result.stdout + result.stderr
    assert not list((project / ".robotrain").glob("payloads/*.tar.gz"))
    assert not (project / ".robotrain" / "jobs").exists()
    assert_no_value_under(project / ".robotrain")


def test_cli_allow_secrets_lets_the_dry_run_through(tmp_path: Path) -> None:
    config = '[[allow-secrets]]\npath = "src/training/secrets.json"\nreason = "placeholder values only"\n'
    project = make_project(tmp_path / "project", config)
    (project / "src" / "training" / "secrets.json").write_text('{"api": "placeholder"}\n')
    result = run_cli(["train", "--dry-run"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert "unknown" not in result.stderr


def test_cli_stage_dataset_refuses_and_stages_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    expected = plant(project / "data", tmp_path / "elsewhere")
    result = run_cli(["stage-dataset", "data", "--name", "demos"], cwd=project)
    line = assert_one_line_error(result, "refusing to stage")
    for item in expected:
        assert f"data/{item}" in line
    assert not list((project / ".robotrain").glob("datasets/demos/[0-9]*"))
    assert_no_value_under(project / ".robotrain")


def test_stage_dataset_honours_the_allow_list(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "token.txt").write_text("dummy\n")
    (data / "episode.json").write_text("[1]\n")
    with pytest.raises(UserError, match=r"token\.txt"):
        stage_dataset(tmp_path / ".robotrain", data, "demos")
    staged = stage_dataset(
        tmp_path / ".robotrain", data, "demos", (AllowedSecret(data / "token.txt", "dummy"),)
    )
    assert sorted(p.name for p in Path(staged.uri).iterdir()) == ["episode.json", "token.txt"]


def test_checked_files_names_files_without_prefix_for_staging(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.json").write_text("[]")
    assert [e.name for e in checked_files({"": tmp_path / "a"}, "stage")] == ["x.json"]


def test_listing_and_help_never_load_the_scanner(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    probe = (
        "import sys; from invoke import Program; from robotrain.cli import build_namespace\n"
        "for args in (['--list'], ['train', '--help']):\n"
        "    Program(namespace=build_namespace(), name='robotrain').run(['invoke', *args], exit=False)\n"
        "loaded = [m for m in ('detect_secrets', 're2', 'tqdm', 'pathspec') if m in sys.modules]\n"
        "print(loaded, file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, check=True
    )
    assert result.stderr.strip().splitlines()[-1] == "[]"
