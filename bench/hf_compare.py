#!/usr/bin/env python3
"""transformers' own Solar-Open experts module and MoE block beside moekit, on one GPU.

Needs torch >= 2.9 with CUDA, transformers >= 5 (SolarOpen), safetensors; standard library else.
Three steps (scripts/gpu/report.sh runs them in this order, with `moekit bench` between 1 and 2):

  1. prepare: one random Solar-Open-100B MoE layer (bf16, the preset's dims from transformers'
     SolarOpenConfig) written as a checkpoint in the hub's naming: WORK/ckpt/config.json and
     model.safetensors. moekit reads it (`moekit bench --model`, `moekit run --model`): both sides
     use the same weights.

        python3 bench/hf_compare.py prepare --work WORK

  2. run: (a) output checks: transformers' block and experts (eager, batched_mm, grouped_mm; no
     compile) against `moekit run` on the same checkpoint and the same hidden states; the experts
     check also uses the same routing (transformers' router's, given to moekit in the input file);
     the block check compares moekit's own routing and block output. (b) timings: for each
     experts implementation x torch.compile mode (off, default, reduce-overhead,
     max-autotune-no-cudagraphs; eager only without compile), a child process times the experts
     call and the block for every batch x seq: CUDA-event medians after warm-up, peak memory as the
     torch.cuda.max_memory_allocated delta from before the first call. Out-of-memory is a row
     ("oom"), and each child has a time budget; what it did not reach is a "timeout" row. Writes
     OUT/results.json (moekit-report/1, mergeable with `moekit report --merge`) and OUT/log.txt.

        python3 bench/hf_compare.py run --work WORK --moekit build/moekit --out OUT [--budget-s 300]

Limitations (also in the report's notes): compiled modes compile once per (batch, seq) and scope
(dynamic=False, torch._dynamo.reset() in between), so the budget bounds how many points a slow
mode (max-autotune) reaches; inductor's caches (/tmp/torchinductor_$USER) make a second run faster.
batched_mm points whose gathered weights cannot fit are recorded as "oom" without being run.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

H_NOTE = "Solar-Open-100B MoE layer (H=4096 I=1280 E=128 K=8, 1 shared expert), bf16"
IMPLS = ("eager", "batched_mm", "grouped_mm")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune-no-cudagraphs")


def log(*parts):
    print("[hf_compare %6.1fs]" % (time.time() - T0), *parts, flush=True)


T0 = time.time()


def parse_list(text):
    return [int(v) for v in text.split(",") if v.strip()]


def solar_config(num_layers=1):
    from transformers import SolarOpenConfig

    # The defaults are Solar-Open-100B's: H=4096, moe_intermediate_size=1280, 128 routed experts,
    # top-8, 1 shared expert, 1 group, norm_topk_prob, scaling 1.0.
    return SolarOpenConfig(num_hidden_layers=num_layers)


def layer_names(config, layer=0):
    return "model.layers.%d.mlp." % layer


# ---- 1. prepare ------------------------------------------------------------------------------


def prepare(args):
    import torch
    from safetensors.torch import save_file

    cfg = solar_config()
    E, H, I = cfg.n_routed_experts, cfg.hidden_size, cfg.moe_intermediate_size
    Is = I * cfg.n_shared_experts
    ckpt = os.path.join(args.work, "ckpt")
    os.makedirs(ckpt, exist_ok=True)
    gen = torch.Generator(device="cpu").manual_seed(args.seed)

    def uniform(shape, fan_in):
        # U(-1, 1) / sqrt(fan_in), as moekit bench draws its random weights.
        t = torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1
        return (t / math.sqrt(fan_in)).to(torch.bfloat16).contiguous()

    p = layer_names(cfg)
    tensors = {}
    for e in range(E):
        tensors[p + "experts.%d.gate_proj.weight" % e] = uniform((I, H), H)
        tensors[p + "experts.%d.up_proj.weight" % e] = uniform((I, H), H)
        tensors[p + "experts.%d.down_proj.weight" % e] = uniform((H, I), I)
    tensors[p + "gate.weight"] = uniform((E, H), H)
    tensors[p + "gate.e_score_correction_bias"] = torch.zeros(E, dtype=torch.float32)
    tensors[p + "shared_experts.gate_proj.weight"] = uniform((Is, H), H)
    tensors[p + "shared_experts.up_proj.weight"] = uniform((Is, H), H)
    tensors[p + "shared_experts.down_proj.weight"] = uniform((H, Is), Is)
    save_file(tensors, os.path.join(ckpt, "model.safetensors"), metadata={"format": "pt"})
    config = {
        "model_type": "solar_open",
        "hidden_size": H,
        "moe_intermediate_size": I,
        "n_routed_experts": E,
        "num_experts_per_tok": cfg.num_experts_per_tok,
        "n_shared_experts": cfg.n_shared_experts,
        "n_group": cfg.n_group,
        "topk_group": cfg.topk_group,
        "norm_topk_prob": cfg.norm_topk_prob,
        "routed_scaling_factor": cfg.routed_scaling_factor,
        "num_hidden_layers": 1,
        "hidden_act": cfg.hidden_act,
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(ckpt, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    log("wrote", ckpt, "(%d tensors)" % len(tensors))


# ---- the transformers module on the checkpoint's weights -------------------------------------


def build_block(work, impl):
    """SolarOpenMoE (router, SolarOpenExperts, shared MLP) with the checkpoint's weights, bf16, cuda."""
    import torch
    from safetensors.torch import load_file
    from transformers.models.solar_open.modeling_solar_open import SolarOpenMoE

    cfg = solar_config()
    cfg._experts_implementation = impl
    if getattr(cfg, "_experts_implementation", None) != impl:  # older setters: the internal field
        cfg._experts_implementation_internal = impl
    state = load_file(os.path.join(work, "ckpt", "model.safetensors"), device="cuda")
    p = layer_names(cfg)
    E = cfg.n_routed_experts
    with torch.device("meta"):
        block = SolarOpenMoE(cfg)
    block = block.to_empty(device="cuda").to(torch.bfloat16)
    with torch.no_grad():
        gate_up = torch.stack(
            [torch.cat([state[p + "experts.%d.gate_proj.weight" % e], state[p + "experts.%d.up_proj.weight" % e]], 0)
             for e in range(E)])
        block.experts.gate_up_proj.copy_(gate_up)
        del gate_up
        block.experts.down_proj.copy_(torch.stack([state[p + "experts.%d.down_proj.weight" % e] for e in range(E)]))
        block.gate.weight.copy_(state[p + "gate.weight"])
        block.gate.e_score_correction_bias = state[p + "gate.e_score_correction_bias"].float()
        for proj in ("gate_proj", "up_proj", "down_proj"):
            getattr(block.shared_experts, proj).weight.copy_(state[p + "shared_experts.%s.weight" % proj])
    del state
    torch.cuda.empty_cache()
    block.eval()
    return cfg, block


def hidden_states(batch, seq, H, seed):
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed * 7919 + batch * 1009 + seq)
    return (torch.rand((batch, seq, H), generator=g) * 2 - 1).to(torch.bfloat16).cuda()


def is_oom(e):
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


# ---- 2a. output checks against moekit run ----------------------------------------------------


def rel_err(a, b):
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def checks(args):
    """transformers (no compile) and `moekit run` on the same checkpoint and hidden states.

    Two `moekit run` calls on the check points' tokens stacked into one input (the layer is
    token-wise): one given transformers' routing (the experts call alone), one routing itself (the
    block). Returns {(impl, scope, batch, seq): text}.
    """
    import torch
    from safetensors.torch import load_file, save_file

    points = [(b, s) for (b, s) in ((1, 16), (4, 128)) if b in args.batch_list and s in args.seq_list]
    if not points:
        points = [(args.batch_list[0], args.seq_list[0])]
    try:
        cfg, block = build_block(args.work, "grouped_mm")
    except Exception as e:  # noqa: BLE001 (a missing class or a changed API: say so in the report)
        log("cannot build the transformers block:", e)
        return {("all",): "failed: %s" % e}
    H = cfg.hidden_size
    xs, routing = {}, {}
    with torch.no_grad():
        for (b, s) in points:
            xs[(b, s)] = hidden_states(b, s, H, args.seed + 1)
            _, w, idx = block.gate(xs[(b, s)])
            routing[(b, s)] = (idx, w)
    x_all = torch.cat([xs[p].view(-1, H) for p in points]).cpu().contiguous()
    idx_all = torch.cat([routing[p][0] for p in points]).to(torch.int32).cpu().contiguous()
    w_all = torch.cat([routing[p][1] for p in points]).float().cpu().contiguous()
    files = {"given": {"hidden_states": x_all, "top_k_index": idx_all, "top_k_weights": w_all},
             "own": {"hidden_states": x_all}}
    moekit_out = {}
    for name, tensors in files.items():
        path = os.path.join(args.work, "check_in_%s.safetensors" % name)
        out = os.path.join(args.work, "check_out_%s.safetensors" % name)
        save_file(tensors, path)
        cmd = [args.moekit, "run", "--model", os.path.join(args.work, "ckpt"), "--layer", "0", "--input", path,
               "--output", out, "--backend", args.moekit_backend]
        if args.run_device != "cpu":
            cmd += ["--device", args.run_device]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        log("moekit run (%s routing, %d tokens): rc=%d, %.1f s" % (name, x_all.shape[0], proc.returncode,
                                                                    time.time() - t0))
        moekit_out[name] = load_file(out) if proc.returncode == 0 else \
            "moekit run failed: " + proc.stderr.strip()[-200:]

    results = {}
    tol = args.tolerance
    for impl in IMPLS:
        block.config._experts_implementation = impl
        first = 0
        for (b, s) in points:
            T = b * s
            rows = slice(first, first + T)
            first += T
            key_e, key_b = (impl, "experts", b, s), (impl, "block", b, s)
            x = xs[(b, s)]
            idx, w = routing[(b, s)]
            try:
                with torch.no_grad():
                    out_e = block.experts(x.view(-1, H), idx, w).cpu()
                    out_b = block(x).view(-1, H).cpu()
            except Exception as e:  # noqa: BLE001 (batched_mm runs out of memory at large T)
                results[key_e] = results[key_b] = "OOM" if is_oom(e) else "failed: %s" % str(e).splitlines()[0][:200]
                torch.cuda.empty_cache()
                continue
            given, own = moekit_out["given"], moekit_out["own"]
            if isinstance(given, str):
                results[key_e] = given
            else:
                err = rel_err(out_e, given["hidden_states"][rows])
                results[key_e] = "%s: rel err %.2e vs moekit run (%s, same routing)" % (
                    "ok" if err <= tol else "MISMATCH", err, args.moekit_backend)
            if isinstance(own, str):
                results[key_b] = own
            else:
                mi = own["top_k_index"][rows].long()
                same = (torch.sort(mi, -1).values == torch.sort(idx.cpu().long(), -1).values).all(-1)
                err = rel_err(out_b[same], own["hidden_states"][rows][same]) if bool(same.any()) else float("nan")
                alike = int(same.sum())
                results[key_b] = "%s: rel err %.2e vs moekit run (own routing; %d of %d tokens route alike)" % (
                    "ok" if err <= tol and alike >= 0.95 * T else "MISMATCH", err, alike, T)
            log("check", impl, "b%d s%d:" % (b, s), results[key_e], "|", results[key_b])
    del block
    torch.cuda.empty_cache()
    return results


# ---- 2b. timings, one child process per (implementation, compile mode) -----------------------


def child(args):
    """Times one implementation x compile mode over every point and scope; one JSON row per line."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    out = open(args.rows, "a", buffering=1)
    start = time.time()
    impl, mode = args.impl, args.mode
    cfg, block = build_block(args.work, impl)
    H, E, I, K = cfg.hidden_size, cfg.n_routed_experts, cfg.moe_intermediate_size, cfg.num_experts_per_tok
    import torch._dynamo

    for attr in ("cache_size_limit", "recompile_limit"):
        if hasattr(torch._dynamo.config, attr):
            setattr(torch._dynamo.config, attr, 64)

    def emit(row):
        out.write(json.dumps(row) + "\n")

    for b in args.batch_list:
        for s in args.seq_list:
            T = b * s
            for scope in ("experts", "block"):
                row = {"impl": "transformers", "backend": impl,
                       "mode": "no compile" if mode == "off" else "compile " + mode, "scope": scope, "batch": b,
                       "seq": s, "tokens": T, "layers": 1}
                left = args.budget_s - (time.time() - start)
                if left < (3 if mode == "off" else 15):
                    emit(dict(row, status="timeout", detail="not run: this configuration's budget of %.0f s was spent"
                              % args.budget_s))
                    continue
                if impl == "batched_mm":
                    # [T*K] gathered copies of gate_up and down (bf16), before any product runs.
                    need = T * K * 3 * I * H * 2
                    free = torch.cuda.mem_get_info()[0]
                    if need > free:
                        emit(dict(row, status="oom", detail="not run: batched_mm gathers %.1f GiB of weights, more than "
                                  "the %.1f GiB free" % (need / 2**30, free / 2**30)))
                        continue
                try:
                    x = hidden_states(b, s, H, args.seed + 2)
                    x2 = x.view(-1, H)
                    with torch.no_grad():
                        _, w, idx = block.gate(x)
                    if scope == "experts":
                        module, inputs = block.experts, (x2, idx, w)
                    else:
                        module, inputs = block, (x,)
                    if mode != "off":
                        torch._dynamo.reset()
                        fn = torch.compile(module, mode=mode, dynamic=False)
                    else:
                        fn = module
                    # Memory held from here on (a CUDA graph's pool, compiled buffers) counts too; the
                    # compile's own transients do not (the peak is reset after warm-up).
                    torch.cuda.synchronize()
                    base = torch.cuda.memory_allocated()
                    t0 = time.time()
                    with torch.no_grad():
                        fn(*inputs)
                        torch.cuda.synchronize()
                        first_s = time.time() - t0
                        for _ in range(args.warmup):
                            fn(*inputs)
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats()
                        times = []
                        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        for _ in range(args.repeat):
                            ev0.record()
                            fn(*inputs)
                            ev1.record()
                            ev1.synchronize()
                            times.append(ev0.elapsed_time(ev1))
                        peak = torch.cuda.max_memory_allocated() - base
                    times.sort()
                    n = len(times)
                    med = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
                    p90 = times[max(math.ceil(0.9 * n), 1) - 1]
                    emit(dict(row, status="ok", median_ms=med, p90_ms=p90, extra_memory_bytes=max(int(peak), 0),
                              detail="first call (compile) %.1f s" % first_s if mode != "off" else ""))
                except Exception as e:  # noqa: BLE001 (OOM and compile failures are results)
                    status = "oom" if is_oom(e) else "failed"
                    emit(dict(row, status=status, detail=str(e).splitlines()[0][:300] if str(e) else type(e).__name__))
                finally:
                    fn = module = inputs = x = x2 = w = idx = None
                    torch.cuda.empty_cache()
    out.close()


def run(args):
    import torch
    import transformers

    os.makedirs(args.out, exist_ok=True)
    gpu = torch.cuda.get_device_name(0)
    log("torch", torch.__version__, "transformers", transformers.__version__, "on", gpu)
    rows_path = os.path.join(args.out, "rows.jsonl")
    if os.path.exists(rows_path):
        os.remove(rows_path)
    check = checks(args) if not args.no_check else {}
    torch.cuda.empty_cache()

    groups = [(impl, mode) for impl in IMPLS for mode in COMPILE_MODES if impl != "eager" or mode == "off"]
    # Shares of the budget in proportion to what each mode cost on an H100 (16 points: 8 shapes x 2
    # scopes): inductor's max-autotune compiles took 11-59 s a point, the other modes a few seconds.
    weights = {"off": 1.0, "default": 1.5, "reduce-overhead": 1.5, "max-autotune-no-cudagraphs": 8.0}
    remaining = args.budget_s - (time.time() - T0)
    total_w = sum(weights[m] for _, m in groups)
    for i, (impl, mode) in enumerate(groups):
        share = max(remaining * weights[mode] / total_w, 10.0)
        total_w -= weights[mode]
        t_start = time.time()
        cmd = [sys.executable, os.path.abspath(__file__), "child", "--work", args.work, "--impl", impl, "--mode", mode,
               "--rows", rows_path, "--budget-s", "%.1f" % share, "--batch", args.batch, "--seq", args.seq,
               "--seed", str(args.seed), "--warmup", str(args.warmup), "--repeat", str(args.repeat)]
        log("timing %s, compile %s (budget %.0f s)" % (impl, mode, share))
        with open(os.path.join(args.out, "log.txt"), "a") as logf:
            logf.write("\n==== %s compile=%s budget %.0f s\n" % (impl, mode, share))
            logf.flush()
            # The child's own budget is `share`; the kill comes 20 s later, but never after the
            # whole budget (+10 s) is spent, so this process still writes results.json before a
            # caller's `timeout budget + 20` (scripts/gpu/report.sh) stops it.
            kill_after = min(share + 20, max(args.budget_s + 10 - (time.time() - T0), 5.0))
            try:
                subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, timeout=kill_after)
            except subprocess.TimeoutExpired:
                log("  killed after %.0f s" % (time.time() - t_start))
        remaining -= time.time() - t_start

    rows = []
    if os.path.exists(rows_path):
        with open(rows_path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    have = {(r["backend"], r["mode"], r["scope"], r["batch"], r["seq"]) for r in rows}
    for impl, mode in groups:
        label = "no compile" if mode == "off" else "compile " + mode
        for b in args.batch_list:
            for s in args.seq_list:
                for scope in ("experts", "block"):
                    if (impl, label, scope, b, s) not in have:
                        rows.append({"impl": "transformers", "backend": impl, "mode": label, "scope": scope, "batch": b,
                                     "seq": s, "tokens": b * s, "layers": 1, "status": "timeout",
                                     "detail": "not reached: the process ran out of its time budget (killed)"})
    for r in rows:
        r["source"] = 0
        if r["mode"] == "no compile":
            text = check.get((r["backend"], r["scope"], r["batch"], r["seq"]))
            if text:
                r["check"] = text
        if not r.get("detail"):
            r.pop("detail", None)
    notes = [
        "weights: the checkpoint of `hf_compare.py prepare` (also read by moekit bench --model); hidden states "
        "U(-1, 1); routing from SolarOpenTopkRouter (zero correction bias)",
        "median of %d calls after %d warm-up calls, each between two CUDA events; compiled: dynamic=False, one "
        "compile per point and scope" % (args.repeat, args.warmup),
        "extra memory = torch.cuda.max_memory_allocated during the timed calls minus memory_allocated before the first "
        "(compiling) call: memory kept by compilation or graph capture counts, the compile's transients do not",
        "eager is timed without torch.compile only (its per-expert loop is data-dependent)",
        "a timeout row: the configuration's share of the %.0f s budget was spent (compiles included)" % args.budget_s,
    ]
    if check.get(("all",)):
        notes.append("output checks: " + check[("all",)])
    doc = {"schema": "moekit-report/1", "title": "transformers " + transformers.__version__ + " on " + gpu,
           "sources": [{"tool": "transformers %s (torch %s)" % (transformers.__version__, torch.__version__),
                        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]), "device": gpu,
                        "layer": H_NOTE, "notes": notes}],
           "rows": rows}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
    ok = sum(r["status"] == "ok" for r in rows)
    bad = [v for v in check.values() if not v.startswith("ok") and v != "OOM"]
    log("wrote %s: %d rows, %d timed; checks: %d, not ok: %d" % (os.path.join(args.out, "results.json"), len(rows), ok,
                                                                  len(check), len(bad)))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    for name in ("prepare", "run", "child"):
        p = sub.add_parser(name)
        p.add_argument("--work", required=True, help="folder for the checkpoint and exchange files")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--batch", default="1,4")
        p.add_argument("--seq", default="1,16,128,512")
        p.add_argument("--warmup", type=int, default=3)
        p.add_argument("--repeat", type=int, default=10)
        if name == "run":
            p.add_argument("--moekit", required=True, help="the moekit binary (for `moekit run`)")
            p.add_argument("--out", required=True)
            p.add_argument("--budget-s", type=float, default=300, help="wall-clock budget of checks and timings")
            p.add_argument("--tolerance", type=float, default=2e-2, help="relative L2 error allowed (bf16)")
            p.add_argument("--moekit-backend", default="grouped_mm")
            p.add_argument("--run-device", default="cpu", help="--device of `moekit run`")
            p.add_argument("--no-check", action="store_true")
        if name == "child":
            p.add_argument("--impl", required=True)
            p.add_argument("--mode", required=True)
            p.add_argument("--rows", required=True)
            p.add_argument("--budget-s", type=float, required=True)
    args = ap.parse_args()
    args.batch_list, args.seq_list = parse_list(args.batch), parse_list(args.seq)
    if args.step == "prepare":
        return prepare(args) or 0
    if args.step == "child":
        return child(args) or 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
