"""Decode/prefill tok/s of several genai model folders, interleaved (speed.stage_bench), and which .so each loaded."""
import json, sys
from pathlib import Path
sys.path.insert(0, "/work/main/models/smollm2")
import speed
work, threads, rounds, out = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
names = sys.argv[5:]
speed.stage_bench(work, threads, rounds, out, names)
maps = [l.split()[-1] for l in open("/proc/self/maps") if "libtmac_ort_ops" in l]
print("loaded:", sorted(set(maps)))
r = json.loads(out.read_text())
for n in names:
    print(f"{n}: decode {r[n]['decode_tok_s']:.2f} tok/s, prefill {r[n]['prefill_tok_s']:.1f} tok/s")
