"""The GPU kit, prepared on the CPU machine: the Python 3.12 wheels the GPU machine lacks, in the
ignored folder `.whl/` that travels with the working tree (64 MiB in all), so that one command
there (bench/gpu_run.sh) installs them with `pip install --no-index --no-deps --target` and runs
bench/gpu_bench.py.

    python bench/gpu_kit.py gather    # resolve for Python 3.12 / manylinux x86_64, download, size
    python bench/gpu_kit.py check     # prove the set complete: resolve with no index at all

What the GPU image already holds is in bench/gpu_image.txt (its package list, as the device
tool's notes give it, with the versions seen there where known); everything else the imports of
synth, its server and the Coqui engine need is gathered: coqui-tts and its pure-Python
dependencies, soxr, soundfile, quicktok-v1, the grpc health and reflection packages, and a
`torchcodec` distribution (coqui-tts refuses to import under torch >= 2.9 without one; it only
looks it up, synth reads audio with soundfile). Piper is not in the kit: its voice model alone
(63 MB) would fill the 64 MiB; the benchmark says whether onnxruntime there has CUDA instead.

`check` resolves the kit's requirements against `.whl/` plus stand-in wheels (name and version
only) for the image's packages, with pip's resolver told Python 3.12 and manylinux x86_64 and
no index: it fails, naming the package, when anything an import chain needs is missing."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".whl"
IMAGE = Path(__file__).resolve().parent / "gpu_image.txt"
LIMIT_MIB = 60  # of the 64 MiB that travel: room for the working tree itself
REQUIREMENTS = [
    "coqui-tts==0.28.0",
    "six",
    "soxr",
    "soundfile",
    "quicktok-v1==0.4.0",
    "grpcio-health-checking>=1.85.1",
    "grpcio-reflection>=1.85.1",
    "prometheus-client",
    "tqdm",
    "torchcodec==0.11.0",
    "grpcio>=1.85.1",
    "protobuf>=7.35.1",
]
# Carried even though the image has them: the committed gRPC stubs check at import that grpcio is
# at least 1.85.1 and protobuf at least 7.35.1 (the versions that generated them); the image's
# versions are not recorded, and the kit's, first on the path, win in the benchmark's process.
ALWAYS = {"grpcio", "protobuf"}
SDIST_ONLY = ["docopt==0.6.2"]  # pure Python, published as a source archive only: built here
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]


def target(python: str) -> list[str]:
    """pip's options for the machine the wheels are for: CPython `python`, manylinux x86_64."""
    abi = "cp" + python.replace(".", "")
    out = [
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--abi",
        abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    return out + [x for p in PLATFORMS for x in ("--platform", p)] + ["--only-binary=:all:"]


def image_packages() -> dict[str, str | None]:
    """name -> version (None: version not recorded) of what the GPU image holds."""
    out: dict[str, str | None] = {}
    for line in IMAGE.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[normalize(name)] = version or None
    return out


def normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def gather(wheels: Path, python: str) -> None:
    """Resolve the requirements for the GPU machine, download what its image lacks into `wheels`."""
    TARGET = target(python)
    provided = image_packages()
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "built"
        pip("wheel", "-q", "--no-deps", "-w", str(built), *SDIST_ONLY)
        report = Path(tmp) / "report.json"
        pip(
            "install", "-q", "--dry-run", "--ignore-installed", "--report", str(report),
            "--target", str(Path(tmp) / "t"), "--find-links", str(built), *TARGET, *REQUIREMENTS,
        )  # fmt: skip
        resolved = json.loads(report.read_text())["install"]
        versions = {normalize(r["metadata"]["name"]): r["metadata"]["version"] for r in resolved}
        wanted = [
            f"{r['metadata']['name']}=={r['metadata']['version']}"
            for r in resolved
            if normalize(r["metadata"]["name"]) not in provided or normalize(r["metadata"]["name"]) in ALWAYS
        ]
        if wheels.exists():
            shutil.rmtree(wheels)
        wheels.mkdir()
        pip("download", "-q", "--no-deps", "-d", str(wheels), "--find-links", str(built), *TARGET, *wanted)
        (wheels / "resolved.json").write_text(json.dumps(versions, indent=1, sort_keys=True))
    sizes = sorted(((p.stat().st_size, p.name) for p in wheels.glob("*.whl")), reverse=True)
    total = sum(s for s, _ in sizes) / 2**20
    for size, name in sizes[:8]:
        print(f"{size / 2**20:7.2f} MiB  {name}")
    print(f"{len(sizes)} wheels, {total:.1f} MiB in {wheels} (limit {LIMIT_MIB} MiB)")
    if total > LIMIT_MIB:
        sys.exit(f"the kit is {total:.1f} MiB, over {LIMIT_MIB} MiB: it would not travel")


def stand_in(folder: Path, name: str, version: str) -> None:
    """A wheel holding only metadata: the GPU image's package, for the resolver."""
    dist = f"{name.replace('-', '_')}-{version}"
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: synth\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr(f"{dist}.dist-info/RECORD", "")


def check(wheels: Path, python: str) -> None:
    """Resolve the requirements with no index: the kit plus stand-ins of the image's packages."""
    TARGET = target(python)
    if not wheels.is_dir() or not any(wheels.glob("*.whl")):
        sys.exit("no kit in .whl/: run `python bench/gpu_kit.py gather` first")
    with tempfile.TemporaryDirectory() as tmp:
        stand = Path(tmp) / "image"
        stand.mkdir()
        report = Path(tmp) / "report.json"
        versions = resolved_versions(wheels)
        for name, version in image_packages().items():
            if name not in ALWAYS:
                stand_in(stand, name, version or versions.get(name, "999"))
        pip(
            "install", "-q", "--dry-run", "--ignore-installed", "--no-index", "--report", str(report),
            "--find-links", str(wheels), "--find-links", str(stand), "--target", str(Path(tmp) / "t"),
            *TARGET, *REQUIREMENTS,
        )  # fmt: skip
        used = {normalize(r["metadata"]["name"]) for r in json.loads(report.read_text())["install"]}
    kit = {normalize(p.name.split("-")[0]) for p in wheels.glob("*.whl")}
    print(
        f"complete: {len(used)} distributions resolve for Python 3.12 with no index, {len(kit & used)} from the kit"
    )


def resolved_versions(wheels: Path) -> dict[str, str]:
    """The versions pip chose when gathering (for image packages whose version is not recorded)."""
    path = wheels / "resolved.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("gather", "check"))
    ap.add_argument("--dir", default=str(WHEELS), help="the kit's folder (.whl/ travels with the tree)")
    ap.add_argument("--python", default="3.12", help="the Python the wheels are for (the GPU machine's)")
    args = ap.parse_args()
    (gather if args.what == "gather" else check)(Path(args.dir), args.python)


if __name__ == "__main__":
    main()
