"""ramp against STScI's stcal jump step, same cubes, same run: quality, seconds, peak memory.

    python benchmarks/bench_ramp.py [--size 2048] [--groups 20] [--seed 100]
                                    [--quality-seeds 200-201] [--out bench-output]

1. Simulates one ``SIZE x SIZE x GROUPS`` ramp (``skytriage simulate ramp`` physics: IPC,
   common-mode and row noise, 3 % non-linearity, sky 1-10 e-/group) and writes it as FITS.
2. Runs, each in a fresh process so that peak memory is its own (``ru_maxrss``):
   ``skytriage.ramp.run`` on the file (reads it band by band), and stcal's
   ``detect_jumps_data`` (two-point differences, 4-neighbour flagging and snowball
   expansion, JWST NIR defaults) on the same reads, reference-corrected by skytriage
   beforehand (that correction is not counted in stcal's time), with the saturated reads
   flagged in the group DQ.
3. Scores both masks against the truth (``skytriage.ramp.evaluate.score``); stcal has one
   jump flag, scored as the cosmic-ray class and, for snowballs, as "flagged at all".
   Every table comes twice: all visible events, and ``clear_only`` (faint telegraph
   pixels, whose best visit has an oracle SNR below 5, and cosmic rays whose peak pixel
   lies under another event, left out the same way for every tool).
4. Repeats the quality comparison on smaller, longer ramps (512 x 512 x 100) at sky
   fluxes of 1 and 10 e-/group, where telegraph noise can toggle.

ohana, the other reference, cannot be installed beside torch 2.13 (it pins torch==2.2.2);
that is recorded in the output. Appends one JSON line to ``OUT/bench_ramp.jsonl`` and
prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from skytriage.ramp.evaluate import mean_scores, score
from skytriage.ramp.simulate import RampSimConfig, read_truth, simulate_ramp, write_simulated

DQ = {"GOOD": 0, "DO_NOT_USE": 1, "SATURATED": 2, "JUMP_DET": 4, "NO_GAIN_VALUE": 8,
      "REFERENCE_PIXEL": 2**31}


def memory_mib(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_skytriage(path: str, out: str) -> dict:
    """Run skytriage on the file; the mask goes to ``out``."""
    from skytriage.ramp.model import shipped_model
    from skytriage.ramp.pipeline import run

    model = shipped_model()
    base = memory_mib("VmRSS")
    t0 = time.perf_counter()
    result = run(path, model=model)
    seconds = time.perf_counter() - t0
    np.save(out, result.mask)
    return {"seconds": seconds, "peak_mib": memory_mib("VmHWM"), "baseline_mib": base,
            "info": result.info}


def worker_stcal(path: str, out: str) -> dict:
    """Run stcal's jump step on the same reads; the 2-D jump mask goes to ``out``."""
    from stcal.jump.jump import detect_jumps_data
    from stcal.jump.jump_class import JumpData

    from skytriage.ramp.refpix import channel_of_column, channel_offsets, correct_band
    from skytriage.ramp.source import open_ramp

    source = open_ramp(path)
    ints, groups, ny, nx = source.shape
    offsets = channel_offsets(source, 4, 4)
    data = np.empty(source.shape, np.float32)
    gdq = np.zeros(source.shape, np.uint8)
    for i in range(ints):
        raw = source.band(i, 0, ny)
        gdq[i][raw >= source.saturation] = DQ["SATURATED"]
        data[i] = correct_band(raw, offsets[i], 4, channel_of_column(nx, 4))
    pdq = np.zeros((ny, nx), np.uint32)
    pdq[:4] = pdq[-4:] = pdq[:, :4] = pdq[:, -4:] = DQ["REFERENCE_PIXEL"]
    gain = np.full((ny, nx), source.gain, np.float32)
    # stcal's read noise is that of a difference of two reads (CDS), in DN
    read_noise = np.full((ny, nx), np.sqrt(2) * source.read_noise / source.gain, np.float32)
    jump = JumpData(gain2d=gain, rnoise2d=read_noise, dqflags=DQ)
    jump.init_arrays_from_arrays(data, gdq, pdq)
    jump.nframes = 1
    jump.dt_group = np.ones(1)
    jump.n_reads_groupdiff = np.ones(1) * 2
    jump.max_cores = "none"
    jump.set_snowball_info(True, 5.0, 1, 2.0, True, 2.5, 2, 25)
    base = memory_mib("VmRSS")
    t0 = time.perf_counter()
    gdq_out, _, n_crs, n_snow = detect_jumps_data(jump)
    seconds = time.perf_counter() - t0
    flagged = (gdq_out & DQ["JUMP_DET"]).any(axis=(0, 1))
    np.save(out, flagged)
    return {"seconds": seconds, "peak_mib": memory_mib("VmHWM"), "baseline_mib": base,
            "primary_crs": int(n_crs), "extended_events": int(n_snow)}


def in_fresh_process(tool: str, path: Path, mask_out: Path) -> dict:
    """Run one worker in a new interpreter and return its JSON report."""
    done = subprocess.run([sys.executable, __file__, "--worker", tool, str(path),
                           str(mask_out)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def stcal_mask(flagged: np.ndarray) -> dict[str, np.ndarray]:
    """stcal's jump flags as ramp masks: as the CR class, and as 'flagged at all'."""
    as_cr = flagged.astype(np.uint16)  # bit 1
    as_any = (flagged * 7).astype(np.uint16)  # bits 1, 2, 4: flagged, whatever the class
    return {"stcal": as_cr, "stcal_any_class": as_any}


def compare(path: Path, work: Path) -> dict:
    """Both tools on one file: timings, memory and scores."""
    truth = read_truth(path)
    ours = in_fresh_process("skytriage", path, work / "ours.npy")
    theirs = in_fresh_process("stcal", path, work / "stcal.npy")
    masks = {"skytriage": np.load(work / "ours.npy"),
             **stcal_mask(np.load(work / "stcal.npy"))}
    return {"skytriage": ours, "stcal": theirs,
            "scores": {name: score(mask, truth) for name, mask in masks.items()},
            "clear_scores": {name: score(mask, truth, clear_only=True)
                             for name, mask in masks.items()}}


def parse_seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def table(scores: dict) -> str:
    """Markdown table of the per-class scores of every tool."""
    lines = ["| tool | class | event recall | pixel recall | pixel precision | false events"
             " / Mpix |", "|---|---|---|---|---|---|"]
    for tool, per_class in scores.items():
        for name in ("cr", "rtn", "snowball", "any"):
            s = per_class[name]
            lines.append(f"| {tool} | {name} | {s['event_recall']:.4f} | "
                         f"{s['pixel_recall']:.4f} | {s['pixel_precision']:.4f} | "
                         f"{s['false_events_per_mpix']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--quality-seeds", default="200-201")
    parser.add_argument("--quality-size", type=int, default=512)
    parser.add_argument("--quality-groups", type=int, default=100)
    parser.add_argument("--out", default="bench-output")
    args = parser.parse_args()
    record = {"benchmark": "ramp", "size": args.size, "groups": args.groups,
              "ohana": "not run: pip cannot install it beside torch 2.13 "
                       "(ohana 0.0.1 and 0.1.0 pin torch==2.2.2)"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = RampSimConfig(shape=(args.size, args.size), n_groups=args.groups)
        t0 = time.perf_counter()
        sim = simulate_ramp(config, args.seed)
        path = write_simulated(sim, work, "big")["ramp"]
        record["simulate_s"] = time.perf_counter() - t0
        record["sky_e_per_group"] = sim.header["SKYFLUX"]
        del sim
        big = compare(path, work)
        record["full"] = big
        mpix = args.size**2 * args.groups / 1e6
        for tool in ("skytriage", "stcal"):
            big[tool]["mvoxel_per_s"] = mpix / big[tool]["seconds"]
        record["speed_ratio_stcal_over_skytriage"] = (big["stcal"]["seconds"]
                                                      / big["skytriage"]["seconds"])
        quality, clear = {}, {}
        for sky in (1.0, 10.0):
            runs: dict[str, list] = {}
            clear_runs: dict[str, list] = {}
            for seed in parse_seeds(args.quality_seeds):
                cfg = RampSimConfig(shape=(args.quality_size, args.quality_size),
                                    n_groups=args.quality_groups, sky=(sky, sky))
                p = write_simulated(simulate_ramp(cfg, seed), work, f"q{seed}")["ramp"]
                compared = compare(p, work)
                for tool, s in compared["scores"].items():
                    runs.setdefault(tool, []).append(s)
                for tool, s in compared["clear_scores"].items():
                    clear_runs.setdefault(tool, []).append(s)
            quality[f"sky_{sky:g}"] = {tool: mean_scores(r) for tool, r in runs.items()}
            clear[f"sky_{sky:g}"] = {tool: mean_scores(r) for tool, r in clear_runs.items()}
        record["quality"] = quality
        record["quality_clear_only"] = clear
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench_ramp.jsonl", "a") as f:
        f.write(json.dumps(record, default=float) + "\n")
    print(f"## {args.size}x{args.size}x{args.groups}, sky {record['sky_e_per_group']} "
          f"e-/group")
    for tool in ("skytriage", "stcal"):
        r = big[tool]
        print(f"{tool}: {r['seconds']:.1f} s, {r['mvoxel_per_s']:.2f} Mvoxel/s, peak RSS "
              f"{r['peak_mib']:.0f} MiB (before the call {r['baseline_mib']:.0f} MiB)")
    print(f"stcal / skytriage time: {record['speed_ratio_stcal_over_skytriage']:.2f}")
    print(table(big["scores"]))
    print("\nclear_only (faint telegraph pixels and overlapped cosmic rays left out):")
    print(table(big["clear_scores"]))
    for name, scores in quality.items():
        print(f"\n## {args.quality_size}x{args.quality_size}x{args.quality_groups}, {name}")
        print(table(scores))
        print("\nclear_only:")
        print(table(clear[name]))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        tool, path, mask_out = sys.argv[2:5]
        report = (worker_skytriage if tool == "skytriage" else worker_stcal)(path, mask_out)
        print(json.dumps(report, default=float))
    else:
        os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
        main()
