"""scripts/check_layers.py: libich's tree passes, and a tree with an upward
include, a pair of modules that include each other, an upward call through
a public header or a folder without a layer fails, naming the file."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_layers.py"


def check(root):
    return subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True)


def tree(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / "libich" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_libich_passes():
    result = check(ROOT)
    assert result.returncode == 0, result.stdout
    assert "all downward" in result.stdout


def test_downward_includes_pass(tmp_path):
    root = tree(tmp_path, {
        "core/error.h": "",
        "data/labels.c": '#include "core/error.h"\n#include "ich/labels.h"\n',
        "report/report.c": '#include "data/labels.h"\n#include "ich/model.h"\n',
        "data/labels.h": "",
    })
    result = check(root)
    assert result.returncode == 0, result.stdout


def test_upward_include_fails(tmp_path):
    root = tree(tmp_path, {
        "report/report.h": "",
        "train/history.c": '#include "report/report.h"\n',
    })
    result = check(root)
    assert result.returncode == 1
    assert "libich/train/history.c: train/ (layer 7) includes report/report.h of report/" in result.stdout


def test_upward_public_header_fails(tmp_path):
    root = tree(tmp_path, {"data/label_match.h": '#include "ich/model.h"\n'})
    result = check(root)
    assert result.returncode == 1
    assert "libich/data/label_match.h: data/ (layer 4) includes ich/model.h of nn/" in result.stdout


def test_mutual_includes_fail(tmp_path):
    # same layer, so only the pair rule can catch it
    root = tree(tmp_path, {
        "optim/optim.h": "",
        "metrics/metrics.h": "",
        "optim/loss.c": '#include "metrics/metrics.h"\n',
        "metrics/metrics.c": '#include "optim/optim.h"\n',
    })
    result = check(root)
    assert result.returncode == 1
    assert "metrics/ and optim/ include each other" in result.stdout


def test_unknown_module_and_umbrella_fail(tmp_path):
    root = tree(tmp_path, {
        "misc/thing.c": '#include "core/error.h"\n',
        "core/error.h": '#include "ich/ich.h"\n',
    })
    result = check(root)
    assert result.returncode == 1
    assert "module misc/ has no layer" in result.stdout
    assert "umbrella ich/ich.h" in result.stdout
