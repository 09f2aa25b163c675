"""Atomic writes (checkpoints, label CSVs, PNGs: a temporary file beside the
target, renamed into place): a writer killed half way leaves a temporary
file that the next write of the same file removes, and output names up to
255 bytes work although the temporary name adds a suffix."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import ich

HERE = os.path.dirname(os.path.abspath(__file__))


def temporaries(folder):
    return sorted(n for n in os.listdir(folder) if ".tmp-" in n)


def test_killed_write_is_cleaned_by_the_next_write(tmp_path):
    path = str(tmp_path / "big.safetensors")
    # A child saves a 64 MB model again and again; it is killed as soon as
    # a temporary file shows up (up to 20 tries).
    child = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        import ich
        model = ich.Model("input 1x4x4, flatten, linear 4096, linear 4096")
        print("ready", flush=True)
        while True:
            model.save(sys.argv[1])
    """) % os.path.dirname(HERE)
    left = []
    for attempt in range(20):
        proc = subprocess.Popen([sys.executable, "-c", child, path], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 20
        while not temporaries(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        left = temporaries(tmp_path)
        if left:
            break
    assert left, "no write was caught half way"
    model = ich.Model("input 1x4x4, flatten, linear 2")
    model.save(path)
    assert temporaries(tmp_path) == []
    assert ich.Model.load(path).spec == model.spec


def test_output_names_up_to_255_bytes(tmp_path):
    model = ich.Model("input 1x4x4, flatten, linear 2")
    labels = ich.Labels(["any"])
    labels.add("ID_1", [1.0])
    for n in (250, 255):
        path = str(tmp_path / ("m" * (n - 12) + ".safetensors"))
        model.save(path)
        assert ich.Model.load(path).spec == model.spec
        csv = str(tmp_path / ("l" * (n - 4) + ".csv"))
        labels.write(csv)
        assert ich.Labels.read(csv).ids == ["ID_1"]
    assert temporaries(tmp_path) == []
    assert len(os.listdir(tmp_path)) == 4
