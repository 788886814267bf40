"""MagicFuse inference cost at 640×480: seconds per network step, extrapolated seconds per frame, peak memory.

Random weights (speed does not depend on the values), batch 1, a random uint8 frame. For each network one call is
timed at the frame's latent size (encoder, one IKR / CKG / MKF step, decoder); a frame costs
``encoder + 25·(IKR + CKG + MKF + DDIM) + 3·decoder``, printed as the extrapolated s/frame. ``--sample`` also
times the whole 25-step sampler end to end (minutes on a CPU at 640×480). The small configuration (the conformance
goldens' networks) runs by default; ``--config full`` builds the released 560 M-parameter networks (the CKG alone
is 2.07 GB in float32; slow on a CPU, flagged, optional). Peak memory is the process's maximum resident set size
(``resource.getrusage``), i.e. weights plus the largest activations of any step so far::

    python benchmarks/magicfuse_speed.py [--config small|full] [--size 640x480] [--threads 1] [--device cpu]
        [--sample] [--bf16]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from m3svd.methods.magicfuse import builders
from m3svd.methods.magicfuse.sampler import Nets, draw_noise, sample


def random_module(build):
    """Build on ``meta`` and fill with N(0, 1/fan_in) weights: avoids the slow default init of 518 M params."""
    with torch.device("meta"):
        net = build()
    net = net.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5 if p.dim() > 1 else 1 + 0.1 * torch.randn(
                p.shape, generator=gen))
    return net.eval().requires_grad_(False)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small", choices=("small", "full"))
    parser.add_argument("--size", default="640x480", help="W×H, multiples of 4 (default 640x480)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sample", action="store_true", help="also time the full 25-step sampler")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (meant for CUDA)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)
    t0 = time.perf_counter()
    nets = Nets(**{k: random_module(b) for k, b in builders(args.config).items()}).to(device)
    params = {k: sum(p.numel() for p in getattr(nets, k).parameters()) / 1e6 for k in ("ae", "ikr", "ckg", "mkf")}
    print(f"magicfuse {args.config}: parameters (M) " + ", ".join(f"{k} {v:.2f}" for k, v in params.items())
          + f"; built in {time.perf_counter() - t0:.1f} s; {w}x{h}, {torch.get_num_threads()} threads, {device}"
          + (", bf16" if args.bf16 else ""))
    image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    enc, x_t, seg = (t.to(device) for t in draw_noise(image, torch.Generator().manual_seed(55)))
    t = torch.full((1,), 480.0, device=device)
    cast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else None
    cond = torch.cat([2 * torch.rand_like(x_t) - 1, x_t], 1)
    calls = {
        "encoder": lambda: nets.ae.encoder(image, noise=enc),
        "ikr step": lambda: nets.ikr(cond, t),
        "ckg step": lambda: nets.ckg(cond, t),
        "mkf step": lambda: nets.mkf(torch.cat([x_t, x_t, x_t], 1), x_t, x_t, t, seg),
        "decoder": lambda: nets.ae.decoder(x_t.sigmoid()),
    }
    seconds = {}
    with torch.inference_mode():
        for name, call in calls.items():
            with cast or torch.autocast("cpu", enabled=False):
                seconds[name] = timed(call, device)
            print(f"  {name:9s} {seconds[name]:8.3f} s   peak RSS so far {peak_mib():8.0f} MiB")
        frame = seconds["encoder"] + 25 * (seconds["ikr step"] + seconds["ckg step"] + seconds["mkf step"]) \
            + 3 * seconds["decoder"]
        print(f"extrapolated: {frame:.1f} s per {w}x{h} frame ({1 / frame:.4f} frames/s)")
        if args.sample:
            elapsed = timed(lambda: sample(nets, image, enc_noise=enc, x_T=x_t, seg_T=seg, bf16=args.bf16), device)
            print(f"measured 25-step sampler: {elapsed:.1f} s per frame; peak RSS {peak_mib():.0f} MiB")
    if device.type == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
