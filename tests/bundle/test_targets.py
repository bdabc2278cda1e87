"""Multi-target folders: target parsing, the phone identities, index.json, and the generated
selectors giving the same answers as the Python rule (Java compiled and run; Swift checked
statically, and compiled and run only where swiftc exists: it needs macOS or a Swift toolchain)."""
import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from edgetailor.bundle import targets
from edgetailor.bundle.manifest import path_sha256, tree_files
from edgetailor.bundle.targets import PHONES, Target, Variant, parse_targets, select_variant
from edgetailor.errors import BundleError, SpecError
from edgetailor.latency import profiles

# target, predicted ms: the Pixel is fastest on Android (the default), the int8 S8 beats the fp32 S8
PLAN = {"pixel1:40": 11.0, "galaxy_s8:80": 75.0, "galaxy_s8_int8:20": 12.0, "note10:30": 28.0,
        "iphone_x:10": 9.5, "iphone_x_tflite:15": 14.0}
ACCURACY = {"value": 71.2, "kind": "estimated", "source": "test", "metric": "imagenet_top1", "note": ""}

ANDROID_IDENTITIES = [  # brand, device, SoC manufacturer, SoC model (None: not reported)
    ("google", "sailfish", None, None),
    ("Google", "MARLIN", "", ""),
    ("samsung", "dreamlte", None, None),
    ("samsung", "SCV36", None, None),
    ("samsung", "d1q", "QTI", "SM8150"),
    ("xiaomi", "cepheus", "QTI", "SM8150"),             # another phone with the Note10's chip
    ("OnePlus", "OnePlus5", "Qualcomm", "MSM8998"),     # the S8's Snapdragon
    ("samsung", "beyond1lte", "Samsung", "Exynos 9825"),
    ("acme", "phone", "Acme", "A1"),
    ("", "", None, None),
]
IOS_MACHINES = ["iPhone10,3", "iPhone10,6", "iPhone10,1", "iPhone10,4", "iPhone10,2", "iPhone12,1", "x86_64", ""]


def make_variants(root: Path, plan: dict[str, float]) -> list[Variant]:
    """Small fake bundle folders under ``root`` and their variants."""
    variants = []
    for text, predicted_ms in plan.items():
        target = parse_targets(text)[0]
        folder = root / target.variant
        (folder / "model.mlpackage" / "Data").mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"folder": target.variant}))
        (folder / "model.tflite").write_bytes(target.variant.encode() * 3)
        (folder / "labels.txt").write_text("cat\ndog\n")
        (folder / "model.mlpackage" / "Manifest.json").write_text("{}")
        (folder / "model.mlpackage" / "Data" / "weights.bin").write_bytes(b"\0\1" + target.variant.encode())
        variants.append(Variant(target, predicted_ms, ACCURACY, f"subnet for {text}"))
    return variants


@pytest.fixture
def folder(tmp_path):
    """A multi-target folder with its index and selectors written."""
    variants = make_variants(tmp_path, PLAN)
    targets.write_index(tmp_path, variants, {"supernet": "ckpt/supernet.keras"})
    targets.write_selectors(tmp_path, targets.read_index(tmp_path))
    return tmp_path


# --- targets -----------------------------------------------------------------------------------

def test_targets_resolve_aliases_to_profile_names_and_tolerate_whitespace():
    parsed = parse_targets(" pixel : 40 , s8:80ms,iphone8:12.5,note10:30 ")
    assert parsed == [Target("pixel1-tflite-fp32-1big", 40), Target("galaxy_s8-caffe2-nnpack-fp32", 80),
                      Target("iphone_x-tflite-fp32-1thread", 12.5), Target("note10-tflite-ofa-mbv3", 30)]
    assert [t.variant for t in parsed] == ["pixel1_40ms", "galaxy_s8_80ms", "iphone_x_tflite_12.5ms",
                                           "note10_30ms"]
    assert Target("pixel", 40) == Target("pixel1", 40.0)


def host_profile(tmp_path) -> str:
    """A valid profile file of a machine no app runs on."""
    data = json.loads(resources.files("edgetailor.device_profiles").joinpath("pixel1.json").read_text())
    data.update(name="host-tflite-test", aliases=[], device="the build machine")
    path = tmp_path / "host.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("text, words", [
    ("", ["no targets given"]),
    ("   ", ["no targets given"]),
    ("pixel1", ["'pixel1'", "DEVICE:BUDGET_MS"]),
    (":40", ["':40'", "DEVICE:BUDGET_MS"]),
    ("pixel1:40,,iphone_x:10", ["target 2 is empty"]),
    ("pixel1:fast", ["'pixel1:fast'", "'fast' is not a number"]),
    ("pixel1:", ["'pixel1:'", "not a number"]),
    ("pixel1:nan", ["'pixel1:nan'", "finite number of ms above 0"]),
    ("pixel1:inf", ["'pixel1:inf'", "finite number of ms above 0"]),
    ("pixel1:0", ["'pixel1:0'", "above 0"]),
    ("pixel1:-5", ["'pixel1:-5'", "above 0"]),
    ("pixle1:40", ["'pixle1:40'", "unknown device 'pixle1'", "known devices: galaxy_s8,", "pixel1"]),
    ("pixel1:40,pixel:40.0", ["'pixel:40.0' repeats 'pixel1:40'", "pixel1_40ms"]),
    ("missing.json:40", ["'missing.json:40'", "not found"]),
])
def test_bad_targets_are_one_line_spec_errors_naming_the_item(text, words):
    with pytest.raises(SpecError) as caught:
        parse_targets(text)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_a_device_without_a_phone_identity_is_refused(tmp_path):
    path = host_profile(tmp_path)
    with pytest.raises(SpecError, match=r"host-tflite-test\) has no phone identity.*targets can use: galaxy_s8"):
        parse_targets(f"{path}:40")


def test_budgets_name_variants_by_their_shortest_text():
    assert [t.variant for t in parse_targets("pixel1:40.0,galaxy_s8:12.5,note10:0.25")] == [
        "pixel1_40ms", "galaxy_s8_12.5ms", "note10_0.25ms"]


# --- the phone table ---------------------------------------------------------------------------

@pytest.mark.parametrize("profile", profiles.shipped(), ids=lambda p: p.name)
def test_every_shipped_profile_has_a_phone_named_by_one_of_its_aliases(profile):
    phone = PHONES[profile.name]
    assert phone.short in profile.aliases
    assert phone.platform in targets.PLATFORMS and phone.models and phone.socs
    kinds = ((targets.AndroidModel, targets.AndroidSoc) if phone.platform == "android"
             else (targets.IosModel, targets.IosChip))
    assert all(isinstance(m, kinds[0]) for m in phone.models)
    assert all(isinstance(s, kinds[1]) for s in phone.socs)
    if phone.platform == "ios":  # a phone's own models are among its chip's iPhones
        assert set(phone.models) <= {m for chip in phone.socs for m in chip.models}


def test_the_table_holds_no_profile_that_is_not_shipped():
    assert set(PHONES) == {p.name for p in profiles.shipped()}


# --- index.json --------------------------------------------------------------------------------

def test_index_lists_every_variant_with_the_manifest_hashes(folder):
    index = targets.read_index(folder)
    assert index["format"] == "edgetailor-targets/1"
    assert index["source"] == {"supernet": "ckpt/supernet.keras"}
    assert [v["folder"] for v in index["variants"]] == [parse_targets(t)[0].variant for t in PLAN]
    for entry, (text, predicted_ms) in zip(index["variants"], PLAN.items()):
        target = parse_targets(text)[0]
        profile = profiles.load(target.device)
        assert entry["files"] == tree_files(folder / entry["folder"])
        assert entry["sha256"] == path_sha256(folder / entry["folder"])
        assert set(entry["files"]) >= {"manifest.json", "model.tflite", "labels.txt",
                                       "model.mlpackage/Manifest.json"}
        assert entry["device"] == profile.name
        assert (entry["device_name"], entry["runtime"]) == (profile.device, profile.runtime)
        assert (entry["budget_ms"], entry["predicted_ms"]) == (target.budget_ms, predicted_ms)
        assert entry["within_budget"] is True
        assert entry["platform"] == target.phone.platform
        assert entry["accuracy"] == ACCURACY and entry["subnet"] == f"subnet for {text}"
        assert entry["match"] == json.loads(json.dumps(target.phone.match()))


def test_the_default_per_platform_is_the_fastest_variant(folder):
    platforms = targets.read_index(folder)["platforms"]
    assert platforms["android"] == {"default": "pixel1_40ms", "selector": "selectors/android/ModelSelector.java",
                                    "order": ["pixel1_40ms", "galaxy_s8_int8_20ms", "note10_30ms",
                                              "galaxy_s8_80ms"],
                                    "never_selected": ["galaxy_s8_80ms"]}  # the int8 S8 is faster on every S8
    assert platforms["ios"] == {"default": "iphone_x_10ms", "selector": "selectors/ios/ModelSelector.swift",
                                "order": ["iphone_x_10ms", "iphone_x_tflite_15ms"], "never_selected": []}


def test_the_index_is_written_atomically(folder):
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([parse_targets(t)[0].variant for t in PLAN] + ["index.json", "selectors"])
    assert sorted(p.relative_to(folder).as_posix() for p in (folder / "selectors").rglob("*") if p.is_file()) == [
        "selectors/android/ModelSelector.java", "selectors/ios/ModelSelector.swift"]


def test_without_an_ios_target_no_swift_selector_is_written_and_the_index_says_so(tmp_path):
    variants = make_variants(tmp_path, {"pixel1:40": 30.0})
    targets.write_index(tmp_path, variants, {})
    written = targets.write_selectors(tmp_path, targets.read_index(tmp_path))
    assert written == [tmp_path / "selectors/android/ModelSelector.java"]
    ios = targets.read_index(tmp_path)["platforms"]["ios"]
    assert ios["default"] is None and ios["selector"] is None and "no target runs on ios" in ios["note"]
    assert not (tmp_path / "selectors" / "ios").exists()


def test_a_missing_or_repeated_variant_folder_is_a_bundle_error(tmp_path):
    variants = make_variants(tmp_path, {"pixel1:40": 30.0})
    with pytest.raises(BundleError, match="given twice"):
        targets.write_index(tmp_path, variants * 2, {})
    shutil.rmtree(tmp_path / "pixel1_40ms")
    with pytest.raises(BundleError, match="pixel1_40ms is missing"):
        targets.write_index(tmp_path, variants, {})
    assert not (tmp_path / "index.json").exists()


# --- the rule ----------------------------------------------------------------------------------

def test_the_rule_picks_model_then_chip_then_the_fastest(folder):
    index = targets.read_index(folder)

    def android(brand, device, maker=None, model=None):
        return select_variant(index, "android", brand=brand, device=device, soc_manufacturer=maker,
                              soc_model=model)

    assert android("google", "sailfish") == "pixel1_40ms"
    assert android("GOOGLE", "Marlin") == "pixel1_40ms"                       # case does not matter
    assert android("samsung", "dreamqltesq") == "galaxy_s8_int8_20ms"        # two S8 variants: the faster
    assert android("samsung", "d1", "Samsung", "s5e9825") == "note10_30ms"
    assert android("xiaomi", "cepheus", "QTI", "SM8150") == "note10_30ms"      # same chip as a Note10
    assert android("google", "sailfish", "QTI", "SM8150") == "pixel1_40ms"   # the model outranks the chip
    assert android("xiaomi", "cepheus", "Qualcomm", "SM 8150") == "note10_30ms"
    assert android("acme", "phone", "Acme", "A1") == "pixel1_40ms"            # nobody's: the default
    assert select_variant(index, "ios", machine="iPhone10,6") == "iphone_x_10ms"
    assert select_variant(index, "ios", machine="iPhone10,4") == "iphone_x_tflite_15ms"
    assert select_variant(index, "ios", machine="iPhone13,2") == "iphone_x_10ms"


def test_the_chip_level_is_not_the_default(folder):
    index = with_a_faster_stranger(targets.read_index(folder), "ios")
    assert select_variant(index, "ios", machine="iPhone10,2") == "iphone_x_10ms"     # an A11 iPhone 8 Plus
    assert select_variant(index, "ios", machine="iPhone13,2") == "stranger_1ms"


def with_a_faster_stranger(index: dict, platform: str) -> dict:
    """The index plus a fastest variant that names no phone, so the default differs from every match."""
    model = next(v for v in index["variants"] if v["platform"] == platform)
    stranger = dict(model, folder="stranger_1ms", predicted_ms=1.0, match={"models": [], "socs": []})
    return dict(index, variants=index["variants"] + [stranger])


def test_select_variant_refuses_another_platforms_identity(folder):
    index = targets.read_index(folder)
    with pytest.raises(TypeError, match="ios identity has no brand"):
        select_variant(index, "ios", brand="google")
    with pytest.raises(ValueError, match="unknown platform 'windows'"):
        select_variant(index, "windows")


def test_no_variant_on_a_platform_selects_nothing(tmp_path):
    targets.write_index(tmp_path, make_variants(tmp_path, {"iphone_x:10": 9.0}), {})
    assert select_variant(targets.read_index(tmp_path), "android", brand="google", device="sailfish") is None


# --- Java --------------------------------------------------------------------------------------

JAVA_MAIN = """\
import edgetailor.ModelSelector;
import java.nio.file.Files;
import java.nio.file.Paths;

public class Main {
    static String value(String field) {
        return field.equals("<null>") ? null : field;
    }

    public static void main(String[] args) throws Exception {
        for (String line : Files.readAllLines(Paths.get(args[0]))) {
            String[] f = line.split("\\t", -1);
            System.out.println(ModelSelector.select(value(f[0]), value(f[1]), value(f[2]), value(f[3])));
        }
        System.out.println(ModelSelector.current());
        System.out.println(ModelSelector.DEFAULT_FOLDER);
    }
}
"""


def run_java(selector: Path, work: Path, identities: list[tuple]) -> list[str]:
    """Compile the selector with a small Main and run it over ``identities``; one answer per line,
    then ``current()`` on this JVM (no android.os.Build) and DEFAULT_FOLDER."""
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("javac/java not on PATH: the generated Java selector cannot be compiled here")
    work.mkdir()
    (work / "Main.java").write_text(JAVA_MAIN)
    rows = ["\t".join("<null>" if v is None else v for v in identity) for identity in identities]
    (work / "identities.tsv").write_text("\n".join(rows) + "\n")
    subprocess.run(["javac", "-Xlint:all", "-Werror", "-d", str(work / "classes"), str(selector),
                    str(work / "Main.java")], check=True, capture_output=True, text=True)
    result = subprocess.run(["java", "-cp", str(work / "classes"), "Main", str(work / "identities.tsv")],
                            check=True, capture_output=True, text=True)
    return result.stdout.splitlines()


def expected_android(index: dict, identities: list[tuple]) -> list[str]:
    return [select_variant(index, "android", brand=b, device=d, soc_manufacturer=m, soc_model=s)
            for b, d, m, s in identities]


def test_the_java_selector_answers_as_the_rule(folder, tmp_path_factory):
    index = targets.read_index(folder)
    identities = ANDROID_IDENTITIES + [(m["brand"], m["device"], None, None)
                                       for v in index["variants"] if v["platform"] == "android"
                                       for m in v["match"]["models"]]
    answers = run_java(folder / "selectors/android/ModelSelector.java", tmp_path_factory.mktemp("java") / "run",
                       identities)
    default = index["platforms"]["android"]["default"]
    assert answers == expected_android(index, identities) + [default, default]
    android = index["platforms"]["android"]
    assert set(answers) == set(android["order"]) - set(android["never_selected"])


def test_the_java_selector_keeps_the_chip_level_apart_from_the_default(folder, tmp_path):
    index = with_a_faster_stranger(targets.read_index(folder), "android")
    targets.write_selectors(tmp_path, index)
    answers = run_java(tmp_path / "selectors/android/ModelSelector.java", tmp_path / "run", ANDROID_IDENTITIES)
    assert answers[:-2] == expected_android(index, ANDROID_IDENTITIES)
    assert "note10_30ms" in answers and answers[-1] == "stranger_1ms"


def test_the_java_selector_holds_only_android_variants(folder):
    java = (folder / "selectors/android/ModelSelector.java").read_text()
    assert "iphone" not in java.lower()
    assert 'DEFAULT_FOLDER = "pixel1_40ms";' in java


# --- Swift -------------------------------------------------------------------------------------

SWIFT_ROW = re.compile(r'\(folder: "([^"]+)", machines: \[([^\]]*)\],\s*chipMachines: \[([^\]]*)\]\)')


def swift_table(source: str) -> tuple[list[tuple[str, set[str], set[str]]], str]:
    """The generated Swift's variant rows (folder, machines, chip machines) and its default."""
    def names(text):
        return set(re.findall(r'"([^"]+)"', text))
    rows = [(folder, names(machines), names(chip)) for folder, machines, chip in SWIFT_ROW.findall(source)]
    return rows, re.search(r'defaultFolder = "([^"]+)"', source).group(1)


def swift_select(rows, default: str, machine: str) -> str:
    """What the generated Swift's select(machine:) does with its table, step for step."""
    for level in (1, 2):
        for row in rows:
            if machine in row[level]:
                return row[0]
    return default


@pytest.mark.parametrize("stranger", [False, True], ids=["shipped", "with-faster-stranger"])
def test_the_swift_selector_table_is_the_ios_variants(folder, tmp_path, stranger):
    """Static check (swiftc needs macOS or a Swift toolchain): the table lists exactly the iOS
    variants, fastest first, with their identifiers, and reading it answers as the rule."""
    index = targets.read_index(folder)
    if stranger:
        index = with_a_faster_stranger(index, "ios")
        targets.write_selectors(tmp_path, index)
        folder = tmp_path
    rows, default = swift_table((folder / "selectors/ios/ModelSelector.swift").read_text())
    ranked = targets._ranked(index["variants"], "ios")
    assert [row[0] for row in rows] == [v["folder"] for v in ranked]
    for row, variant in zip(rows, ranked):
        machines = {m["machine"] for m in variant["match"]["models"]}
        chip = {m["machine"] for c in variant["match"]["socs"] for m in c["models"]}
        assert (row[1], row[2]) == (machines, chip)
    assert default == ranked[0]["folder"]
    for machine in IOS_MACHINES:
        assert swift_select(rows, default, machine) == select_variant(index, "ios", machine=machine)


SWIFT_MAIN = """\
import Foundation

let lines = try! String(contentsOfFile: CommandLine.arguments[1], encoding: .utf8)
for machine in lines.split(separator: "\\n", omittingEmptySubsequences: false).dropLast() {
    print(ModelSelector.select(machine: String(machine)))
}
"""


@pytest.mark.skipif(shutil.which("swiftc") is None, reason="swiftc not on PATH (macOS or a Swift toolchain)")
def test_the_swift_selector_compiles_and_answers_as_the_rule(folder, tmp_path):
    index = targets.read_index(folder)
    (tmp_path / "main.swift").write_text(SWIFT_MAIN)
    (tmp_path / "machines.txt").write_text("\n".join(IOS_MACHINES) + "\n")
    subprocess.run(["swiftc", "-o", str(tmp_path / "select"), str(folder / "selectors/ios/ModelSelector.swift"),
                    str(tmp_path / "main.swift")], check=True, capture_output=True, text=True)
    result = subprocess.run([str(tmp_path / "select"), str(tmp_path / "machines.txt")],
                            check=True, capture_output=True, text=True)
    assert result.stdout.splitlines() == [select_variant(index, "ios", machine=m) for m in IOS_MACHINES]
