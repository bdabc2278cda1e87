"""Multi-target bundle folders: the targets, ``index.json`` and the apps' runtime selectors.

``edgetailor specialize --targets pixel1:40,galaxy_s8:80,iphone_x:10 --out DIR`` writes one bundle
per target, then (with this module) the files that let one app ship them all::

    DIR/<variant>/                             one bundle per target: pixel1_40ms, iphone_x_10ms
    DIR/index.json                             format ``edgetailor-targets/1`` (below)
    DIR/selectors/android/ModelSelector.java   only when a target runs on Android
    DIR/selectors/ios/ModelSelector.swift      only when a target runs on iOS

Targets: ``DEVICE:BUDGET_MS[,DEVICE:BUDGET_MS...]``. DEVICE is a shipped profile's name or alias
(or a profile .json) whose phone is in ``PHONES``; BUDGET_MS a finite number of ms above 0 (an
``ms`` suffix is allowed). A variant is named ``<phone short name>_<budget>ms``.

Selection rule (the generated selectors; ``select_variant`` mirrors it in Python):

1. the phone model: Android ``Build.BRAND`` + ``Build.DEVICE`` (Google Play's device model);
   iOS the hardware model identifier (``utsname.machine``, e.g. ``iPhone10,3``);
2. else the system-on-chip: Android ``Build.SOC_MANUFACTURER`` + ``Build.SOC_MODEL`` (API 31+,
   Google Play's SoC selector); iOS another iPhone with the same chip;
3. else the platform's default.

Where several variants match at a level, the one with the lowest predicted latency wins. The
default is the platform's variant with the lowest predicted latency: on hardware no variant names,
the fastest model is the safest bet to stay within a budget. Android values compare without case
or spaces (builds spell them differently: ``QTI`` and ``Qualcomm``). RAM, Play's third selector,
is not used: it does not tell which chip runs the model.

``index.json``: ``format``, ``edgetailor`` (version), ``created``, ``rule`` (the text above, in
short), ``source`` (what the variants were made from, as the caller gives it), ``variants`` (in
target order: folder, device profile and its device name, runtime, platform, budget_ms,
predicted_ms, within_budget, accuracy, subnet, sha256 of the folder and of each of its ``files``
as the bundle manifest hashes them, and ``match``: the identities above), ``platforms`` (per
platform: ``default`` folder, ``order`` fastest first, ``never_selected`` (folders a faster
variant shadows on every phone they name), ``selector`` path; or nulls with a ``note``).
"""
from __future__ import annotations

import json
import math
import string
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from edgetailor import __version__
from edgetailor._io import write_json, write_text
from edgetailor.bundle.manifest import path_sha256, tree_files
from edgetailor.choose.candidate import within_budget
from edgetailor.errors import BundleError, ProfileError, SpecError
from edgetailor.latency import profiles

FORMAT = "edgetailor-targets/1"
INDEX = "index.json"
PLATFORMS = ("android", "ios")
SELECTORS = {"android": "selectors/android/ModelSelector.java", "ios": "selectors/ios/ModelSelector.swift"}
IDENTITY = {"android": ("brand", "device", "soc_manufacturer", "soc_model"), "ios": ("machine",)}
RULE = ("phone model (Android Build.BRAND + Build.DEVICE; iOS utsname machine), else system-on-chip "
        "(Android Build.SOC_MANUFACTURER + Build.SOC_MODEL, API 31+; iOS an iPhone with the same chip), "
        "else the default; of several matches the lowest predicted latency wins; the default is the "
        "platform's variant with the lowest predicted latency, the safest on unknown hardware")
EXAMPLE = "pixel1:40,galaxy_s8:80,iphone_x:10"


@dataclass(frozen=True)
class AndroidModel:
    """A device model as Google Play keys it."""

    brand: str    # Build.BRAND
    device: str   # Build.DEVICE
    name: str     # retail name, for people


@dataclass(frozen=True)
class AndroidSoc:
    """A system-on-chip as Build.SOC_MANUFACTURER / Build.SOC_MODEL (API 31+) report it; builds
    spell these differently, so each is the set of spellings seen."""

    name: str
    manufacturer: tuple[str, ...]
    model: tuple[str, ...]


@dataclass(frozen=True)
class IosModel:
    machine: str  # utsname machine
    name: str


@dataclass(frozen=True)
class IosChip:
    name: str
    models: tuple[IosModel, ...]  # every iPhone with this chip


@dataclass(frozen=True)
class Phone:
    """How an app recognises the phone a device profile describes."""

    short: str      # in variant names: pixel1_40ms
    platform: str
    models: tuple   # AndroidModel or IosModel
    socs: tuple     # AndroidSoc or IosChip

    def match(self) -> dict:
        return {"models": [asdict(m) for m in self.models], "socs": [asdict(s) for s in self.socs]}


# Android device models: Google Play's supported-devices list as packaged in
# jaredrummler/AndroidDeviceNames database/android-devices.db @7d113bc4 (2022-11; columns name,
# codename = Build.DEVICE, model). Brands from build fingerprints BRAND/PRODUCT/DEVICE:
# google/sailfish/sailfish:10/QP1A.191005.007.A1, samsung/dreamqltesq/dreamqltesq:9/PPR1.180610.011,
# samsung/d1qsq/d1q:9/PPR1.180610.011 (device trees and spoofing configs on GitHub).
# Build.SOC_MANUFACTURER: stock Qualcomm builds write "QTI", LineageOS-style trees "Qualcomm"
# (ro.soc.manufacturer beside ro.soc.model=SM8150 in both kinds of tree); Samsung trees write
# "Samsung" or "samsung" (with "Exynos 9810", "Exynos7580", "exynos7870"), stock Samsung builds of
# newer Exynos "s5e9925" (Galaxy S22). Only API 31+ reports these at all.
QUALCOMM = ("QTI", "Qualcomm")
SAMSUNG = ("Samsung",)

PIXEL1 = (AndroidModel("google", "sailfish", "Pixel"), AndroidModel("google", "marlin", "Pixel XL"))
# LineageOS/lineage_wiki _data/devices/marlin.yml: "Qualcomm MSM8996 Pro Snapdragon 821". Google
# stopped at Android 10; LineageOS 20 runs on it. Trees for this chip family write MSM8996 (a
# z2_plus tree: ro.soc.model=MSM8996); "MSM8996pro" is the chip's name, unverified as a build's value.
SNAPDRAGON_821 = AndroidSoc("Qualcomm Snapdragon 821 (MSM8996 Pro)", QUALCOMM, ("MSM8996pro", "MSM8996"))

GALAXY_S8 = (
    AndroidModel("samsung", "dreamlte", "Galaxy S8 (SM-G950F, Exynos)"),
    AndroidModel("samsung", "dreamlteks", "Galaxy S8 (SM-G950N, Exynos)"),
    AndroidModel("samsung", "dreamqltesq", "Galaxy S8 (SM-G950U, Snapdragon)"),
    AndroidModel("samsung", "dreamqlteue", "Galaxy S8 (SM-G950U1, Snapdragon)"),
    AndroidModel("samsung", "dreamqltecan", "Galaxy S8 (SM-G950W, Snapdragon)"),
    AndroidModel("samsung", "dreamqltechn", "Galaxy S8 (SM-G9500, Snapdragon)"),
    AndroidModel("samsung", "dreamqltecmcc", "Galaxy S8 (SM-G9508, Snapdragon)"),
    AndroidModel("samsung", "SC-02J", "Galaxy S8 (docomo, Snapdragon)"),
    AndroidModel("samsung", "SCV36", "Galaxy S8 (au, Snapdragon)"),
)
# The FBNet/ChamNet papers do not say which S8 they measured, so both chips are listed. Samsung's
# "q" codenames are its Qualcomm models (kernel defconfig msm8998_sec_dreamqlte_jpn_kdi for SCV36).
# MSM8998 as a OnePlus 5 tree writes it (ro.soc.model=MSM8998); the Exynos spellings are unverified
# (no build of this phone reports API 31 values; both seen patterns are listed).
EXYNOS_8895 = AndroidSoc("Samsung Exynos 8895", SAMSUNG, ("Exynos8895", "s5e8895"))
SNAPDRAGON_835 = AndroidSoc("Qualcomm Snapdragon 835 (MSM8998)", QUALCOMM, ("MSM8998",))

NOTE10 = (
    AndroidModel("samsung", "d1", "Galaxy Note10 (SM-N970F, Exynos)"),
    AndroidModel("samsung", "d1x", "Galaxy Note10 5G (SM-N971N, Exynos)"),
    AndroidModel("samsung", "d1q", "Galaxy Note10 (SM-N970U/U1/W, SM-N9700, Snapdragon)"),
)
# LineageOS/lineage_wiki _data/devices/d1.yml: "Samsung Exynos 9825"; d1q is the Snapdragon 855
# (SM8150) model. Once-for-All does not say which Note10 it measured. Stock Android 12 reports SoC
# values on this phone, but none was found: the Exynos spellings are unverified.
EXYNOS_9825 = AndroidSoc("Samsung Exynos 9825", SAMSUNG, ("Exynos9825", "s5e9825"))
SNAPDRAGON_855 = AndroidSoc("Qualcomm Snapdragon 855 (SM8150)", QUALCOMM, ("SM8150",))

# iOS hardware model identifiers: devicekit/DeviceKit Source/Device.generated.swift
# (mapToDevice(identifier:)): iPhone10,1/10,4 iPhone 8, 10,2/10,5 iPhone 8 Plus, 10,3/10,6 iPhone X.
IPHONE_8 = (IosModel("iPhone10,1", "iPhone 8"), IosModel("iPhone10,4", "iPhone 8"))
IPHONE_8_PLUS = (IosModel("iPhone10,2", "iPhone 8 Plus"), IosModel("iPhone10,5", "iPhone 8 Plus"))
IPHONE_X = (IosModel("iPhone10,3", "iPhone X"), IosModel("iPhone10,6", "iPhone X"))
A11 = IosChip("Apple A11 Bionic", IPHONE_8 + IPHONE_8_PLUS + IPHONE_X)

# Pixel 2/3/4 (profiles from the joint calibration): Build.DEVICE codenames as in the Google Play
# list above (walleye/taimen, blueline/crosshatch, flame/coral); chips as shared/data/SOURCES.md
# and Google's spec pages name them. SDM845 / SM8150 as Qualcomm trees write ro.soc.model.
PIXEL2 = (AndroidModel("google", "walleye", "Pixel 2"), AndroidModel("google", "taimen", "Pixel 2 XL"))
PIXEL3 = (AndroidModel("google", "blueline", "Pixel 3"), AndroidModel("google", "crosshatch", "Pixel 3 XL"))
PIXEL4 = (AndroidModel("google", "flame", "Pixel 4"), AndroidModel("google", "coral", "Pixel 4 XL"))
SNAPDRAGON_845 = AndroidSoc("Qualcomm Snapdragon 845 (SDM845)", QUALCOMM, ("SDM845",))

# canonical profile name -> its phone; tests check this covers every shipped profile
PHONES: dict[str, Phone] = {
    "pixel1-tflite-fp32-1big": Phone("pixel1", "android", PIXEL1, (SNAPDRAGON_821,)),
    "galaxy_s8-caffe2-nnpack-fp32": Phone("galaxy_s8", "android", GALAXY_S8, (EXYNOS_8895, SNAPDRAGON_835)),
    "galaxy_s8-caffe2-qnnpack-int8": Phone("galaxy_s8_int8", "android", GALAXY_S8, (EXYNOS_8895, SNAPDRAGON_835)),
    "note10-tflite-ofa-mbv3": Phone("note10", "android", NOTE10, (EXYNOS_9825, SNAPDRAGON_855)),
    "iphone_x-coreml": Phone("iphone_x", "ios", IPHONE_X, (A11,)),
    # measured on an iPhone 8 (same A11 as the iPhone X, whose name the profile carries)
    "iphone_x-tflite-fp32-1thread": Phone("iphone_x_tflite", "ios", IPHONE_8, (A11,)),
    "pixel2-tflite-fp32-1big": Phone("pixel2", "android", PIXEL2, (SNAPDRAGON_835,)),
    "pixel2-tflite-int8-1big": Phone("pixel2_int8", "android", PIXEL2, (SNAPDRAGON_835,)),
    "pixel3-tflite-fp32-1big": Phone("pixel3", "android", PIXEL3, (SNAPDRAGON_845,)),
    "pixel3-tflite-int8-1big": Phone("pixel3_int8", "android", PIXEL3, (SNAPDRAGON_845,)),
    "pixel3-tflite-fp32-4threads": Phone("pixel3_4t", "android", PIXEL3, (SNAPDRAGON_845,)),
    "pixel3-tflite-int8-4threads": Phone("pixel3_int8_4t", "android", PIXEL3, (SNAPDRAGON_845,)),
    "pixel4-tflite-fp32-1big": Phone("pixel4", "android", PIXEL4, (SNAPDRAGON_855,)),
    "pixel4-tflite-fp32-4threads": Phone("pixel4_4t", "android", PIXEL4, (SNAPDRAGON_855,)),
    "pixel4-tflite-int8-4threads": Phone("pixel4_int8_4t", "android", PIXEL4, (SNAPDRAGON_855,)),
}


def known_devices() -> str:
    return ", ".join(sorted(phone.short for phone in PHONES.values()))


def canonical_device(device: str) -> str:
    """The canonical profile name of a shipped profile's name or alias, or of a profile .json."""
    for profile in profiles.shipped():
        if device in (profile.name, *profile.aliases):
            return profile.name
    if device.endswith(".json"):
        try:
            return profiles.load_file(device).name
        except ProfileError as exc:
            raise SpecError(str(exc)) from None
    raise SpecError(f"unknown device {device!r}; known devices: {known_devices()}")


def _finite_number(value) -> bool:
    """An int or float that is finite; a bool is an int to isinstance but no number of ms."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _budget_text(budget_ms: float) -> str:
    """40.0 -> "40", 12.5 -> "12.5": the shortest text that reads back as the same float."""
    return str(int(budget_ms)) if budget_ms.is_integer() else repr(budget_ms)


@dataclass(frozen=True)
class Target:
    """One device and latency budget (ms); ``device`` (a profile name or alias) resolves to the
    canonical profile name, which must have a phone in ``PHONES``."""

    device: str
    budget_ms: float

    def __post_init__(self) -> None:
        name = canonical_device(self.device)
        if name not in PHONES:
            raise SpecError(f"device {self.device!r} (profile {name}) has no phone identity an app "
                            f"could select it by; targets can use: {known_devices()}")
        budget = self.budget_ms
        if not (_finite_number(budget) and budget > 0):
            raise SpecError(f"the budget must be a finite number of ms above 0 (got {budget!r})")
        object.__setattr__(self, "device", name)
        object.__setattr__(self, "budget_ms", float(budget))

    @property
    def phone(self) -> Phone:
        return PHONES[self.device]

    @property
    def variant(self) -> str:
        return f"{self.phone.short}_{_budget_text(self.budget_ms)}ms"


def parse_targets(text: str) -> list[Target]:
    """``DEVICE:BUDGET_MS[,DEVICE:BUDGET_MS...]`` as targets, in the order given."""
    if not text.strip():
        raise SpecError(f"no targets given; expected DEVICE:BUDGET_MS[,DEVICE:BUDGET_MS...], e.g. {EXAMPLE}")
    seen: dict[str, str] = {}  # variant -> the item that made it
    targets = []
    for number, item in enumerate(text.split(","), 1):
        target = _parse_item(item.strip(), number)
        if target.variant in seen:
            raise SpecError(f"target {item.strip()!r} repeats {seen[target.variant]!r} "
                            f"(both make {target.variant})")
        seen[target.variant] = item.strip()
        targets.append(target)
    return targets


def _parse_item(item: str, number: int) -> Target:
    if not item:
        raise SpecError(f"target {number} is empty; expected DEVICE:BUDGET_MS, e.g. pixel1:40")
    device, colon, budget = item.rpartition(":")  # rpartition: a profile path may hold a colon
    if not colon or not device.strip():
        raise SpecError(f"target {item!r} needs DEVICE:BUDGET_MS, e.g. pixel1:40")
    try:
        budget_ms = float(budget.strip().removesuffix("ms"))
    except ValueError:
        raise SpecError(f"target {item!r}: budget {budget.strip()!r} is not a number of ms") from None
    try:
        return Target(device.strip(), budget_ms)
    except SpecError as exc:
        raise SpecError(f"target {item!r}: {exc}") from None


@dataclass(frozen=True)
class Variant:
    """One bundle of a multi-target folder: its target, predicted latency (ms) on the target's
    device, accuracy (the bundle manifest's accuracy dict) and sub-network (free text)."""

    target: Target
    predicted_ms: float
    accuracy: dict
    subnet: str

    @property
    def folder(self) -> str:
        """The bundle's folder, relative to the index."""
        return self.target.variant


def build_index(out_dir: str | Path, variants: list[Variant], source: dict) -> dict:
    """The index of the bundle folders ``out_dir/<variant>`` (read and hashed here)."""
    if not variants:
        raise BundleError("no variants to index")
    folders = [variant.folder for variant in variants]
    repeated = sorted({folder for folder in folders if folders.count(folder) > 1})
    if repeated:
        raise BundleError(f"variant {repeated[0]} is given twice")
    entries = [_variant_entry(Path(out_dir), variant) for variant in variants]
    return {"format": FORMAT, "edgetailor": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rule": RULE,
            "source": source, "variants": entries,
            "platforms": {platform: _platform_entry(platform, entries) for platform in PLATFORMS}}


def _variant_entry(out_dir: Path, variant: Variant) -> dict:
    folder = out_dir / variant.folder
    if not folder.is_dir():
        raise BundleError(f"variant folder {folder} is missing")
    files = tree_files(folder)
    if not files:
        raise BundleError(f"variant folder {folder} is empty")
    predicted = variant.predicted_ms
    if not (_finite_number(predicted) and predicted >= 0):
        raise BundleError(f"variant {variant.folder}: predicted latency must be a finite number of ms "
                          f"(got {predicted!r})")
    target, profile = variant.target, profiles.load(variant.target.device)
    return {"folder": variant.folder, "device": target.device, "device_name": profile.device,
            "runtime": profile.runtime, "platform": target.phone.platform, "budget_ms": target.budget_ms,
            "predicted_ms": round(float(predicted), 3),
            "within_budget": within_budget(predicted, target.budget_ms), "accuracy": variant.accuracy,
            "subnet": variant.subnet, "sha256": path_sha256(folder), "files": files,
            "match": target.phone.match()}


def _ranked(entries: list[dict], platform: str) -> list[dict]:
    """The platform's variants, lowest predicted latency first (ties keep target order)."""
    return sorted((e for e in entries if e["platform"] == platform), key=lambda e: e["predicted_ms"])


def _platform_entry(platform: str, entries: list[dict]) -> dict:
    ranked = _ranked(entries, platform)
    if not ranked:
        return {"default": None, "order": [], "selector": None,
                "note": f"no target runs on {platform}, so no {platform} selector is written"}
    return {"default": ranked[0]["folder"], "order": [e["folder"] for e in ranked],
            "never_selected": _never_selected(platform, ranked), "selector": SELECTORS[platform]}


def _never_selected(platform: str, ranked: list[dict]) -> list[str]:
    """Folders the rule never returns: a faster variant names every phone and chip they name
    (two budgets for one phone, say); an app loads them by folder name only."""
    models_before, socs_before, never = set(), set(), []
    for entry in ranked:
        models, socs = _match_keys(platform, entry["match"])
        if entry is not ranked[0] and models <= models_before and socs <= socs_before:
            never.append(entry["folder"])
        models_before |= models
        socs_before |= socs
    return never


def write_index(out_dir: str | Path, variants: list[Variant], source: dict) -> Path:
    """Write ``out_dir/index.json`` atomically; returns its path."""
    path = Path(out_dir) / INDEX
    write_json(path, build_index(out_dir, variants, source))
    return path


def read_index(out_dir: str | Path) -> dict:
    path = Path(out_dir) / INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"no {INDEX} in {out_dir}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise BundleError(f"{path}: not an index of format {FORMAT}")
    return index


def _normalized(value: str | None) -> str:
    return "" if value is None else value.replace(" ", "").lower()


def _pair(first: str | None, second: str | None) -> str:
    return f"{_normalized(first)}/{_normalized(second)}"


def _match_keys(platform: str, match: dict) -> tuple[set[str], set[str]]:
    """The keys a phone's identity is looked up by: (model keys, system-on-chip keys)."""
    if platform == "ios":
        return ({m["machine"] for m in match["models"]},
                {m["machine"] for chip in match["socs"] for m in chip["models"]})
    return ({_pair(m["brand"], m["device"]) for m in match["models"]},
            {_pair(maker, model) for soc in match["socs"]
             for maker in soc["manufacturer"] for model in soc["model"]})


def select_variant(index: dict, platform: str, **identity: str | None) -> str | None:
    """The folder the generated selector picks (rule in the module docstring), or None when no
    variant runs on ``platform``. Android: brand, device, soc_manufacturer, soc_model; iOS: machine."""
    if platform not in IDENTITY:
        raise ValueError(f"unknown platform {platform!r}; one of {', '.join(PLATFORMS)}")
    unexpected = sorted(set(identity) - set(IDENTITY[platform]))
    if unexpected:
        raise TypeError(f"{platform} identity has no {', '.join(unexpected)}; "
                        f"it is {', '.join(IDENTITY[platform])}")
    ranked = _ranked(index["variants"], platform)
    if not ranked:
        return None
    if platform == "ios":
        model_key = soc_key = identity.get("machine") or ""
    else:
        model_key = _pair(identity.get("brand"), identity.get("device"))
        soc_key = _pair(identity.get("soc_manufacturer"), identity.get("soc_model"))
    keyed = [(entry["folder"], *_match_keys(platform, entry["match"])) for entry in ranked]
    for folder, models, _ in keyed:
        if model_key in models:
            return folder
    for folder, _, socs in keyed:
        if soc_key in socs:
            return folder
    return ranked[0]["folder"]


def write_selectors(out_dir: str | Path, index: dict) -> list[Path]:
    """Write the selector of each platform the index gives one (``platforms.<p>.selector``), made
    from the index's variants; returns the paths written."""
    written = []
    for platform, render in (("android", _java), ("ios", _swift)):
        relative = index["platforms"][platform]["selector"]
        if relative is None:
            continue
        path = Path(out_dir) / relative
        write_text(path, render(index))
        written.append(path)
    return written


def _literal(text: str) -> str:
    """A string literal for Java and Swift (both read JSON's escapes for these ASCII names)."""
    return json.dumps(text)


def _literals(texts: set[str]) -> str:
    return ", ".join(_literal(text) for text in sorted(texts))


def _comment(entry: dict) -> str:
    return (f"{entry['device_name']}, {entry['runtime']}: {entry['predicted_ms']:g} ms predicted, "
            f"budget {entry['budget_ms']:g} ms")


def _java(index: dict) -> str:
    ranked = _ranked(index["variants"], "android")
    rows = []
    for entry in ranked:
        models, socs = _match_keys("android", entry["match"])
        rows.append(f"        // {_comment(entry)}\n"
                    f"        new Variant({_literal(entry['folder'])},\n"
                    f"                new String[] {{{_literals(models)}}},\n"
                    f"                new String[] {{{_literals(socs)}}}),")
    return JAVA.substitute(format=FORMAT, default=_literal(ranked[0]["folder"]),
                           default_ms=f"{ranked[0]['predicted_ms']:g}", rows="\n".join(rows))


def _swift(index: dict) -> str:
    ranked = _ranked(index["variants"], "ios")
    rows = []
    for entry in ranked:
        machines, chip_machines = _match_keys("ios", entry["match"])
        rows.append(f"        // {_comment(entry)}\n"
                    f"        (folder: {_literal(entry['folder'])}, machines: [{_literals(machines)}],\n"
                    f"         chipMachines: [{_literals(chip_machines)}]),")
    return SWIFT.substitute(format=FORMAT, default=_literal(ranked[0]["folder"]),
                            default_ms=f"{ranked[0]['predicted_ms']:g}", rows="\n".join(rows))


JAVA = string.Template("""\
// Generated by edgetailor from index.json ($format); regenerate it rather than edit it.
package edgetailor;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;

/**
 * Picks the edgetailor bundle folder (beside index.json) for the phone the app runs on.
 *
 * <p>In Google Play's device-targeting order: the phone model (Build.BRAND + Build.DEVICE), else
 * the system-on-chip (Build.SOC_MANUFACTURER + Build.SOC_MODEL, API 31 and later), else the
 * default. Of several matches the variant with the lowest predicted latency wins; the default is
 * the fastest variant, the safest on a phone no variant names. Values compare without case or
 * spaces, as builds spell them differently ("QTI", "Qualcomm").
 *
 * <p>Plain Java: {@link #current()} reads android.os.Build by reflection, so this file compiles
 * and its rule can be tested on any JVM without the Android SDK. Off Android, or below API 31 for
 * the SOC_* fields, a missing value reads as empty and matches nothing.
 */
public final class ModelSelector {
    /** The folder where nothing matches: the fastest Android variant ($default_ms ms predicted). */
    public static final String DEFAULT_FOLDER = $default;

    /** Fastest predicted first. */
    private static final Variant[] VARIANTS = {
$rows
    };

    private ModelSelector() {}

    /** The variant folder for this phone, from android.os.Build. */
    public static String current() {
        return select(buildField("BRAND"), buildField("DEVICE"), buildField("SOC_MANUFACTURER"),
                buildField("SOC_MODEL"));
    }

    /**
     * The variant folder for a phone: its Build.BRAND, Build.DEVICE, Build.SOC_MANUFACTURER and
     * Build.SOC_MODEL (null or empty where unknown).
     */
    public static String select(String brand, String device, String socManufacturer, String socModel) {
        String model = key(brand, device);
        for (Variant variant : VARIANTS) {
            if (variant.models.contains(model)) {
                return variant.folder;
            }
        }
        String soc = key(socManufacturer, socModel);
        for (Variant variant : VARIANTS) {
            if (variant.socs.contains(soc)) {
                return variant.folder;
            }
        }
        return DEFAULT_FOLDER;
    }

    private static String key(String first, String second) {
        return normalized(first) + "/" + normalized(second);
    }

    private static String normalized(String value) {
        return value == null ? "" : value.replace(" ", "").toLowerCase(Locale.ROOT);
    }

    /** A static field of android.os.Build as text; "" off Android or where the OS predates it. */
    private static String buildField(String name) {
        try {
            Object value = Class.forName("android.os.Build").getField(name).get(null);
            return value == null ? "" : value.toString();
        } catch (ReflectiveOperationException | LinkageError e) {
            return "";
        }
    }

    private static final class Variant {
        final String folder;
        final Set<String> models;  // "brand/device", normalized
        final Set<String> socs;    // "manufacturer/model", normalized

        Variant(String folder, String[] models, String[] socs) {
            this.folder = folder;
            this.models = new HashSet<>(Arrays.asList(models));
            this.socs = new HashSet<>(Arrays.asList(socs));
        }
    }
}
""")

SWIFT = string.Template("""\
// Generated by edgetailor from index.json ($format); regenerate it rather than edit it.
import Foundation

/// Picks the edgetailor bundle folder (beside index.json) for the iPhone the app runs on.
///
/// The hardware model identifier (`utsname` machine, e.g. "iPhone10,3"), else an iPhone with the
/// same chip, else the default. Of several matches the variant with the lowest predicted latency
/// wins; the default is the fastest variant, the safest on an iPhone no variant names.
public enum ModelSelector {
    /// The folder where nothing matches: the fastest iOS variant ($default_ms ms predicted).
    public static let defaultFolder = $default

    /// Fastest predicted first: the folder, its iPhones, and the iPhones with the same chip.
    private static let variants: [(folder: String, machines: Set<String>, chipMachines: Set<String>)] = [
$rows
    ]

    /// The variant folder for an iPhone's hardware model identifier.
    public static func select(machine: String) -> String {
        if let hit = variants.first(where: { variant in variant.machines.contains(machine) }) {
            return hit.folder
        }
        if let hit = variants.first(where: { variant in variant.chipMachines.contains(machine) }) {
            return hit.folder
        }
        return defaultFolder
    }

    /// The variant folder for the iPhone this runs on.
    public static func current() -> String {
        return select(machine: machine())
    }

    /// The hardware model identifier. The simulator's `uname` reports the Mac's architecture, so
    /// there the simulated model is read from SIMULATOR_MODEL_IDENTIFIER.
    public static func machine() -> String {
        if let simulated = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] {
            return simulated
        }
        var system = utsname()
        uname(&system)
        return withUnsafeBytes(of: &system.machine) { bytes in
            String(decoding: bytes.prefix(while: { byte in byte != 0 }), as: UTF8.self)
        }
    }
}
""")
