"""Print the benchmark tables (markdown) from benchmarks/results/*.json.

    python benchmarks/report.py
"""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def quality_rows(records: list[dict]) -> list[str]:
    rows = ["| data | model | training budget | held-out slices | mean SSIM | PSNR (dB) | active codes of 512 "
            "| steps | train images/s |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["data"], r["name"])):
        tr, ev = r["train"], r["eval"]
        budget = f"{tr['train_seconds'] / 60:.0f} min" + (" (class profile)" if "class-budget" in r["name"] else "")
        rows.append(f"| {r['data']} | {r['model']} | {budget} | {ev['n_images']} | {ev['ssim_mean']:.4f} | "
                    f"{ev['psnr_mean']:.2f} | {ev['active_codes']} | {tr['steps']} | {tr['images_per_second']:.0f} |")
    return rows


def main() -> None:
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    quality = [r for r in records if "eval" in r]
    print("\n".join(quality_rows(quality)))
    if quality:
        m = quality[0]["machine"]
        print(f"\nMachine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
              f"GPU: {m['gpu'] or 'none'}.")
        for r in quality:
            load = r["loading"]
            print(f"- {r['name']}: decoding {load['train_slices']} training slices {load['decode_seconds']} s, "
                  f"from the cache {load['cached_seconds']} s")
    for name in ("data-loading", "sampler-speed"):
        path = RESULTS / f"{name}.json"
        if path.exists():
            print(f"\n{name}: {path.read_text()}")


if __name__ == "__main__":
    main()
