"""The ctypes mirrors of libich's public structs match the C layout.

Every public struct with a `size` field is declared again in
bindings/python/ich as a ctypes.Structure; a field out of place there makes
Python read or write the wrong bytes without any error. This test reads the
structs' field lists from the public headers (include/ich/*.h), compiles a
small C program with `cc` that prints sizeof and every field's offsetof,
and checks each mirror field by field: the same names in the same order,
the same offsets, the same size. No symbol is added to libich for it.

It also keeps the checks complete: every struct that opens with
`size_t size;` must have a mirror here and be in tests/test_abi.c's layout
table with all its fields, and every sized mirror in the package must be
in MIRRORS, so a new public struct cannot go unchecked.
"""

import ctypes
import importlib
import os
import re
import shutil
import subprocess

import pytest


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
INCLUDE = os.path.join(ROOT, "include")


def _module(name):
    # importlib: the package exports functions named like some modules (ich.train)
    return importlib.import_module("ich." + name)


# C struct -> its ctypes mirror.
MIRRORS = {
    "ich_dicom_info": _module("_lib").DicomInfo,
    "ich_ct_slice": _module("_lib").CtSlice,
    "ich_dicom_limits": _module("dicom").DicomLimitsStruct,
    "ich_augment_choices": _module("augment")._Choices,
    "ich_augment_offline_options": _module("augment")._OfflineOptions,
    "ich_dataset_options": _module("dataset")._Options,
    "ich_sample_options": _module("labels").SampleOptions,
    "ich_split_options": _module("split").SplitOptions,
    "ich_select_options": _module("split").SelectOptions,
    "ich_metrics_at": _module("metrics")._At,
    "ich_metrics_class_result": _module("metrics")._ClassResult,
    "ich_metrics_summary_result": _module("metrics")._Summary,
    "ich_metrics_options": _module("metrics")._Options,
    "ich_tensor_view": _module("model")._TensorView,
    "ich_pretrained_report": _module("model")._PretrainedReport,
    "ich_optimizer_options": _module("optim")._OptimizerOptions,
    "ich_schedule_options": _module("optim")._ScheduleOptions,
    "ich_phantom_options": _module("phantom")._Options,
    "ich_evaluate_summary": _module("report")._Summary,
    "ich_evaluate_options": _module("report")._Options,
    "ich_epoch_stats": _module("train")._EpochStats,
    "ich_train_progress": _module("train")._Progress,
    "ich_train_options": _module("train")._Options,
    "ich_preprocess_options": _module("preprocess")._Options,
    "ich_preprocess_summary": _module("preprocess")._Summary,
    "ich_predict_options": _module("predict")._Options,
    "ich_predict_summary": _module("predict")._Summary,
}


def header_structs():
    """{struct name: [field names in order]} of every public typedef'd struct."""
    structs = {}
    folder = os.path.join(INCLUDE, "ich")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".h"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
        for m in re.finditer(r"typedef struct (ich_\w+) \{(.*?)\} \1;", text, re.S):
            fields = []
            for declaration in m.group(2).split(";"):
                declaration = " ".join(declaration.split())
                if not declaration:
                    continue
                # "int64_t tn, fp" declares two; "double dims[4]" one named dims.
                for declarator in declaration.split(","):
                    fields.append(re.search(r"(\w+)\s*(\[\w+\])?$", declarator.strip()).group(1))
            structs[m.group(1)] = fields
    return structs


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    """{struct: (sizeof, {field: offsetof})} as the C compiler lays them out."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        pytest.skip("no C compiler")
    structs = header_structs()
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <ich/ich.h>",
             "int main(void) {"]
    for struct, fields in structs.items():
        lines.append('printf("%%s %%zu\\n", "%s", sizeof(%s));' % (struct, struct))
        for field in fields:
            lines.append('printf("%%s.%%s %%zu\\n", "%s", "%s", offsetof(%s, %s));'
                         % (struct, field, struct, field))
    lines += ["return 0;", "}"]
    folder = tmp_path_factory.mktemp("abi")
    source, program = folder / "layout.c", folder / "layout"
    source.write_text("\n".join(lines) + "\n")
    # The compiler must not run under a sanitizer runtime preloaded for libich.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    subprocess.run([compiler, "-std=c11", "-I", INCLUDE, str(source), "-o", str(program)],
                   check=True, env=env)
    out = subprocess.run([str(program)], check=True, env=env, capture_output=True,
                         text=True).stdout
    layout = {struct: [None, {}] for struct in structs}
    for line in out.splitlines():
        key, value = line.split()
        if "." in key:
            struct, field = key.split(".")
            layout[struct][1][field] = int(value)
        else:
            layout[key][0] = int(value)
    return structs, layout


def c_layout_table():
    """{struct: [fields]} of tests/test_abi.c's layout table (its LAYOUT and
    FIELD entries), the C test of first-version sizes and field offsets."""
    with open(os.path.join(ROOT, "tests", "test_abi.c"), encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    table = {}
    for m in re.finditer(r"\bLAYOUT\((ich_\w+),", text):
        table[m.group(1)] = []
    for m in re.finditer(r"\bFIELD\((ich_\w+), (\w+), \d+\)", text):
        table.setdefault(m.group(1), []).append(m.group(2))
    return table


def test_every_sized_struct_is_in_the_c_layout_table():
    """A public struct that opens with `size_t size;` and is missing from
    test_abi.c's table (or is there without all its fields) would have its
    layout and first version unchecked: a new header must add it there."""
    structs = header_structs()
    sized = {name for name, fields in structs.items() if fields[0] == "size"}
    table = c_layout_table()
    missing = sorted(sized - set(table))
    assert not missing, "structs missing from tests/test_abi.c's layout table: %s" % missing
    for struct in sorted(sized):
        assert table[struct] == structs[struct], (
            "tests/test_abi.c: the FIELD entries of %s differ from the header's fields "
            "(every field, in order)" % struct)


def test_every_mirror_is_compared():
    """Every ctypes mirror of a sized struct in the ich package is one of
    MIRRORS, so none escapes the comparison with C."""
    import ich
    folder = os.path.dirname(ich.__file__)
    compared = set(MIRRORS.values())
    unlisted = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py") or name == "__init__.py":
            continue
        module = _module(name[:-3])
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, ctypes.Structure)
                    and value.__module__ == module.__name__
                    and getattr(value, "_fields_", None)
                    and value._fields_[0] == ("size", ctypes.c_size_t)
                    and value not in compared):
                unlisted.append("%s.%s" % (module.__name__, value.__name__))
    assert not unlisted, "ctypes mirrors not in MIRRORS (add them): %s" % unlisted


def test_every_sized_struct_has_a_mirror(c_layout):
    structs, _ = c_layout
    sized = {name for name, fields in structs.items() if fields[0] == "size"}
    assert len(sized) >= 22
    assert sized == set(MIRRORS), "structs without a ctypes mirror: %s" % (sized - set(MIRRORS))


@pytest.mark.parametrize("struct", sorted(MIRRORS))
def test_mirror_matches_c(c_layout, struct):
    structs, layout = c_layout
    mirror = MIRRORS[struct]
    size, offsets = layout[struct]
    names = [f[0] for f in mirror._fields_]
    assert names == structs[struct], "%s: fields of %s differ from the header" % (
        struct, mirror.__name__)
    for name in names:
        assert getattr(mirror, name).offset == offsets[name], "%s.%s" % (struct, name)
    assert ctypes.sizeof(mirror) == size, struct


def test_parser_sees_every_field():
    """The header reader itself: a few known layouts."""
    structs = header_structs()
    assert structs["ich_metrics_at"][:3] == ["size", "threshold", "tn"]
    assert structs["ich_tensor_view"][4] == "dims"
    assert structs["ich_split_options"] == ["size", "ratios", "seed", "stratify"]
