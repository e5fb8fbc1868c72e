"""Generation overhead: our set generation vs a direct diffusers call, LoRA switches vs reloads.

Default mode (CPU is fine), on the tiny FLUX:
  1. ``generate_sets`` (grid prompt, prompt encoding, LoRA scope, denoise, decode, split)
     against ``FluxPipeline.__call__`` with the same prompt, size, steps, guidance and seed,
     both after a warm-up, alternating (and alternating which goes first), median and best
     of ``--repeats`` runs in wall time and in this process's CPU time (steadier on a
     shared machine), on ``--threads`` torch threads (default 1). Target: ratio <= 1.05.
     The two do the same model work: one prompt encoding, the denoising steps, one VAE
     decode to a PIL image. Ours also builds the grid prompt, takes the pipe's lock (LoRA
     scope), reports each step through the progress callback, cuts the grid into panels
     and records the settings: work an artist gets, so it is counted. It hands the device
     to ``encode_prompt`` itself (``execution_device``) instead of letting diffusers walk
     every module to find it a second time (that walk was the ~1 ms gap once measured).
  2. LoRA: first load of a LoRA file, a strength change, a swap between two LoRAs, each
     measured as "make the view + activate it for a call", against reloading the pipeline.

``--real-dims`` (needs a GPU): a random-weight FLUX transformer with the real FLUX.1-dev
dimensions (19 double + 38 single blocks, 24 heads x 128, ~11.9 B parameters, built on the
meta device then materialised in place) at a 2x2 grid of 512 panels (1024x1024): seconds
per denoising step and peak GPU memory, without offload and with model offload
(``--sequential`` adds sequential offload, which is very slow). The VAE, scheduler and text
encoders are the tiny ones and the prompt embeddings are random tensors of the real shapes
(T5 512 x 4096, CLIP pooled 768): at this size the transformer is nearly all of the time and
memory.

Run:
    python -m bench.generate_overhead                # tiny, CPU
    python -m bench.generate_overhead --real-dims    # GPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from paco_core.families import FLUX

GPU = "cuda"
PANELS = ("a fox packs a map", "a fox crosses a bridge", "a fox climbs a hill", "a fox sleeps in a tent")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--real-dims", action="store_true", help="real FLUX.1-dev transformer size (GPU)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 4 tiny, 4 real)")
    parser.add_argument("--panel-size", type=int, default=None, help="panel side (default 32 tiny, 512 real)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per variant (tiny mode)")
    parser.add_argument("--sequential", action="store_true", help="real dims: also time sequential offload")
    parser.add_argument("--cache", type=Path, default=None, help="tiny model cache folder")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="tiny mode: torch CPU threads (default 1: on a shared machine a thread team waits for its "
        "slowest thread, which swamps the ratio in noise)",
    )
    return parser.parse_args(argv)


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def tiny_flux(cache: Path | None) -> Path:
    from paco_core.testing import build_tiny_models, default_cache_dir

    return build_tiny_models(cache or default_cache_dir(), [FLUX.kind])[FLUX.kind]


# --------------------------------------------------------------------------- tiny mode


def bench_overhead(folder: Path, steps: int, panel: int, repeats: int) -> None:
    import torch

    from paco_core.generate import SetRequest, generate_sets
    from paco_core.models.pipelines import load_pipeline
    from paco_core.prompts import build_grid_prompt

    loaded = load_pipeline(folder)
    request = SetRequest(
        theme="a red fox explorer", panels=PANELS, panel_width=panel, panel_height=panel, steps=steps
    )
    prompt = build_grid_prompt(request.theme, request.description, request.panels, request.layout)

    def ours() -> None:
        generate_sets(loaded, request)

    def direct() -> None:
        loaded.pipe(
            prompt=prompt,
            height=2 * panel,
            width=2 * panel,
            num_inference_steps=steps,
            guidance_scale=request.guidance,
            generator=torch.Generator().manual_seed(request.seed),
        ).images[0]

    ours(), direct()  # warm-up
    wall = {"ours": [], "direct": []}
    cpu = {"ours": [], "direct": []}
    for round_index in range(repeats):
        # alternate which goes first, so neither always runs right after the other's frees
        order = (("ours", ours), ("direct", direct))
        for name, function in order if round_index % 2 == 0 else order[::-1]:
            cpu_started = time.process_time()
            wall[name].append(timed(function))
            cpu[name].append(time.process_time() - cpu_started)
    print(
        f"set generation, 2x2 grid of {panel}px panels, {steps} steps, {repeats} alternating runs "
        f"(tiny FLUX, {torch.get_num_threads()} torch thread(s))"
    )
    print(f"  {'':22}{'wall median':>12}{'best':>10}{'CPU median':>12}{'best':>10}")
    summaries = {name: summarise(wall[name], cpu[name]) for name in wall}
    for name, label in (("ours", "generate_sets"), ("direct", "direct FluxPipeline")):
        print(f"  {label:<22}" + "".join(f"{value * 1000:10.1f}ms" for value in summaries[name]))
    ratios = [ours / direct for ours, direct in zip(summaries["ours"], summaries["direct"], strict=True)]
    print(f"  {'ratio':<22}" + "".join(f"{value:12.3f}" for value in ratios))
    paired = [
        statistics.median(ours / direct for ours, direct in zip(times["ours"], times["direct"], strict=True))
        for times in (wall, cpu)
    ]
    print(f"  {'paired ratio (median)':<22}{paired[0]:12.3f}{'':10}{paired[1]:12.3f}")
    print(
        "  (target <= 1.05; CPU time counts only this process's work, and a paired ratio compares the two runs "
        "of one round, so the machine's other load moves them less)"
    )


def summarise(wall: list[float], cpu: list[float]) -> list[float]:
    """Wall median, wall best, CPU median, CPU best."""
    return [statistics.median(wall), min(wall), statistics.median(cpu), min(cpu)]


def make_lora(folder: Path, path: Path, seed: int) -> Path:
    import torch
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig

    from paco_core.models.lora import save_peft_transformer_lora

    transformer = FluxTransformer2DModel.from_pretrained(str(folder), subfolder="transformer")
    torch.manual_seed(seed)
    targets = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
    transformer.add_adapter(LoraConfig(r=8, lora_alpha=16, init_lora_weights=False, target_modules=targets))
    return save_peft_transformer_lora(transformer, path)


def bench_lora_switches(folder: Path, repeats: int) -> None:
    from paco_core.models.lora import LoraSpec, apply_loras, lora_scope
    from paco_core.models.pipelines import clear_pipeline_cache, load_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        first = make_lora(folder, Path(tmp) / "first.safetensors", 1)
        second = make_lora(folder, Path(tmp) / "second.safetensors", 2)
        clear_pipeline_cache()
        loaded = load_pipeline(folder)

        def activate(view) -> None:
            with lora_scope(view):
                pass

        first_load = timed(lambda: activate(apply_loras(loaded, [LoraSpec(first, 1.0)])))
        apply_loras(loaded, [LoraSpec(second, 1.0)])
        strengths = [
            timed(lambda s=s: activate(apply_loras(loaded, [LoraSpec(first, s)]))) for s in (0.2, 0.5, 0.8)
        ]
        view_a, view_b = apply_loras(loaded, [LoraSpec(first)]), apply_loras(loaded, [LoraSpec(second)])
        swaps = [timed(lambda v=v: activate(v)) for _ in range(repeats) for v in (view_a, view_b)]

        def reload() -> None:
            clear_pipeline_cache()
            activate(apply_loras(load_pipeline(folder), [LoraSpec(first, 0.5)]))

        reloads = [timed(reload) for _ in range(3)]
    reload_s = statistics.median(reloads)
    print("LoRA switches on the tiny FLUX (CPU), median")
    print(f"  first load of a LoRA file   {first_load * 1000:8.2f} ms")
    print(f"  strength change             {statistics.median(strengths) * 1000:8.2f} ms")
    print(f"  swap between two LoRAs      {statistics.median(swaps) * 1000:8.2f} ms")
    print(f"  pipeline reload + LoRA      {reload_s * 1000:8.2f} ms")
    print(f"  reload / strength change    {reload_s / statistics.median(strengths):8.0f} x")


# --------------------------------------------------------------------------- real dims


def bench_real_dims(folder: Path, steps: int, panel: int, sequential: bool) -> None:
    import torch
    from diffusers import FluxPipeline

    from paco_core.testing.real_size import FLUX_DEV_DIMS, random_flux_transformer

    if not torch.cuda.is_available():
        raise SystemExit("--real-dims needs a CUDA GPU (about 30 GB free for the bf16 transformer).")
    dtype = torch.bfloat16
    built = time.perf_counter()
    transformer = random_flux_transformer(GPU, dtype)
    num_params = sum(p.numel() for p in transformer.parameters())
    print(
        f"real-dims FLUX transformer: {num_params / 1e9:.2f} B parameters, built in {time.perf_counter() - built:.1f} s"
    )
    size = 2 * panel
    embeds = torch.randn(
        1, 512, FLUX_DEV_DIMS["joint_attention_dim"], generator=torch.Generator().manual_seed(0)
    )
    pooled = torch.randn(
        1, FLUX_DEV_DIMS["pooled_projection_dim"], generator=torch.Generator().manual_seed(1)
    )
    modes = ["none", "model"] + (["sequential"] if sequential else [])
    print(
        f"2x2 grid of {panel}px panels ({size}x{size}), {steps} steps, bf16, {torch.cuda.get_device_name()}"
    )
    for mode in modes:
        transformer.to(GPU if mode == "none" else "cpu")
        pipe = FluxPipeline.from_pretrained(str(folder), transformer=transformer, dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        if mode == "none":
            pipe.to(GPU)
        elif mode == "model":
            pipe.enable_model_cpu_offload()
        else:
            pipe.enable_sequential_cpu_offload()
        time_call(pipe, embeds, pooled, size, steps)  # warm-up (kernels, offload hooks)
        torch.cuda.reset_peak_memory_stats()
        total, per_step = time_call(pipe, embeds, pooled, size, steps)
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(
            f"  offload={mode:<10} {per_step:6.3f} s/step   call {total:6.2f} s   peak GPU memory {peak:6.1f} GiB"
        )
        if mode != "none":
            pipe.remove_all_hooks()
        pipe = None
        torch.cuda.empty_cache()


def time_call(pipe, embeds, pooled, size: int, steps: int) -> tuple[float, float]:
    """(seconds for the whole call, median seconds between step ends)."""
    import torch

    stamps: list[float] = []

    def on_step(_pipe, _index, _timestep, kwargs):
        torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return kwargs

    device, dtype = pipe._execution_device, pipe.transformer.dtype  # FLUX does not move given embeddings
    started = time.perf_counter()
    pipe(
        prompt_embeds=embeds.to(device, dtype),
        pooled_prompt_embeds=pooled.to(device, dtype),
        height=size,
        width=size,
        num_inference_steps=steps,
        guidance_scale=3.5,
        generator=torch.Generator().manual_seed(0),
        callback_on_step_end=on_step,
    )
    torch.cuda.synchronize()
    total = time.perf_counter() - started
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:], strict=False)]
    return total, statistics.median(gaps) if gaps else total


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = tiny_flux(args.cache)
    if args.real_dims:
        bench_real_dims(folder, args.steps or 4, args.panel_size or 512, args.sequential)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    bench_overhead(folder, args.steps or 4, args.panel_size or 32, args.repeats)
    print()
    bench_lora_switches(folder, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
