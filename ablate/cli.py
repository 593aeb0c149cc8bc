"""`python -m ablate COMMAND`: every stage of the flow (docs/architecture.md) reachable from the shell.

Bad input raises AblateError; main() prints it as one line `error: ...` and returns 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ablate.errors import AblateError


def cmd_schedule(args) -> int:
    from ablate.sampling.schedule import full_steps

    print(" ".join(str(s) for s in full_steps(args.steps, args.budget)))
    return 0


def cmd_prepare(args) -> int:
    from ablate import pretrained
    from ablate.data import check_dataset, dataset_key
    from ablate.device import resolve_device
    from ablate.paths import weights_dir

    check_dataset(args.dataset)
    cfg = pretrained.config_for(args.dataset, args.seed, args.set)
    device = resolve_device(args.device)
    if not args.retrain and not args.set and args.out is None:
        folder = pretrained.find(args.dataset)
        if folder is not None:
            pretrained.verify(folder, args.dataset)
            print(f"{args.dataset}: trained models verified in {folder} (use --retrain to train anew)")
            return 0
    out = Path(args.out) if args.out else weights_dir(dataset_key(args.dataset))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    pretrained.train_bundle(args.dataset, cfg, out, args.set, device=device)
    return 0


def _eval_config(args, **over):
    """The EvalConfig of the sampling options every sampling command shares."""
    from ablate.evaluate import EvalConfig
    from ablate.methods import parse_knobs

    fields = dict(knobs=parse_knobs(args.knob), dataset=args.dataset, method=args.method, steps=args.steps,
                  budget=args.budget, seed=args.seed, batch_size=args.batch_size, cfg_w=args.cfg_w,
                  r_temp=args.r_temp, sm_temp=args.sm_temp, base=args.base, device=args.device, unmasking=args.unmasking,
                  amp=args.amp)
    return EvalConfig(**(fields | over))


def cmd_sample(args) -> int:
    import torch

    from ablate.evaluate import setup
    from ablate.grid import save_grid

    if args.n < 1:
        raise AblateError(f"--n: must be at least 1, got {args.n}")
    st = setup(_eval_config(args, n_samples=max(2, args.n)))
    labels = st.labels[: args.n]
    t = time.perf_counter()
    out = st.sampler.generate(labels, seed=args.seed, batch_size=args.batch_size, method=st.method)
    seconds = time.perf_counter() - t
    images = st.bundle.decode(out.tokens.cpu())
    path = save_grid(images, labels, st.base.num_classes, Path(args.out))
    with torch.no_grad():
        acc_cls = (st.bundle.classifier.predict(images.float() / 255.0) == labels).float().mean().item()
    print(
        f"wrote {path}: {args.n} samples, method {args.method}, N={args.steps}, full steps {out.full_steps}, "
        f"{seconds:.2f} s, class accuracy {acc_cls:.3f}"
    )
    return 0


def cmd_train_shortcut(args) -> int:
    import json

    from ablate.evaluate import EvalConfig, setup
    from ablate.methods import parse_knobs

    knobs = {"traj_steps": args.traj_steps, **parse_knobs(args.knob)}
    cfg = EvalConfig(dataset=args.dataset, method="shortcut", steps=args.traj_steps, knobs=knobs, base=args.base,
                     device=args.device)
    t = time.perf_counter()
    st = setup(cfg)
    stats = st.method.meta.get("stats", {})
    print(json.dumps({"shortcut": st.method.describe(), "stats": stats, "seconds": round(time.perf_counter() - t, 1)},
                     indent=2))
    return 0


def cmd_train_mlm(args) -> int:
    import torch

    from ablate.data import check_dataset
    from ablate.pretrained.mlm import MLMConfig, apply_overrides, train_mlm

    check_dataset(args.dataset)
    cfg = apply_overrides(MLMConfig(), args.set)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = " ".join(["python -m ablate train-mlm", f"--dataset {args.dataset}", f"--out {args.out}",
                        f"--threads {torch.get_num_threads()}", *[f"--set {o}" for o in args.set]])
    train_mlm(args.dataset, Path(args.out), cfg, command=command)
    return 0


def cmd_sweep(args) -> int:
    from ablate.sweep.run import run_sweep
    from ablate.sweep.space import load_space

    space = load_space(args.space, device=args.device)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise AblateError(f"--max-concurrent: must be at least 1, got {args.max_concurrent}")
    res = run_sweep(space, experiment=args.experiment, tracking_uri=args.tracking_uri,
                    ray_address=args.ray_address, max_concurrent=args.max_concurrent, resume=args.resume,
                    dry_run=args.dry_run)
    if not args.dry_run and not args.no_report:
        _sweep_report(res)
    return _failed_exit(res.get("trials_failed", 0), args.allow_failed)


def _failed_exit(failed: int, allowed: bool) -> int:
    """Exit 1 when trials failed (a script or CI must be able to tell), 0 with --allow-failed; the last line says it."""
    if not failed:
        return 0
    print(f"{failed} trial(s) FAILED (their runs hold the error: tag ablate.error, artifact error.txt); exit "
          f"{0 if allowed else 1}" + ("" if allowed else " (--allow-failed exits 0)"), file=sys.stderr)
    return 0 if allowed else 1


def _sweep_report(res: dict) -> None:
    """The sweep's figures and tables (analysis.report), next to its MLflow store and logged to its parent
    run. The runs are already safe in MLflow, so a failing report is printed, never raised."""
    from ablate.tracking.mlflow_log import default_tracking_uri, log_report, runs_dir

    experiment, uri = res["experiment"], res["tracking_uri"]
    out = runs_dir() / "reports" / experiment
    again = f"python -m ablate report --experiment {experiment}"
    if uri != default_tracking_uri():
        again += f" --tracking-uri {uri}"
    try:
        from analysis.report import report

        rep = report([experiment], [uri], parents=[res["parent_run_id"]], out=out)
        log_report(rep)
        for note in rep.notes:
            print(f"report note: {note}")
        print(f"report: {len(rep.files)} files in {out} (also under report/ in the sweep's parent run); "
              f"into results/: {again}")
    except Exception as e:  # noqa: BLE001 - whatever goes wrong here must not fail a finished sweep
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"report failed ({type(e).__name__}: {first}); the sweep's runs are intact, retry with: {again}")


def cmd_study(args) -> int:
    """A study end to end (studies/NAME.yaml), its plan (--dry-run) or the check that its outputs regenerate."""
    import shlex

    from ablate.study.run import Runner, command
    from ablate.study.schema import load_study, studies

    from ablate.study.index import index_differs, write_index
    from ablate.study.schema import STUDIES

    if args.index:
        for f in write_index(STUDIES.parent):
            print(f"wrote {f}")
        return 0
    names = studies(checkable=True) if args.all else [args.name]
    if not args.all and args.name is None:
        raise AblateError("study: name a study (a file in studies/ or a YAML path), or give --all with --check")
    if args.all and not args.check:
        raise AblateError("--all: only with --check (running every study takes days)")
    failed = 0
    for name in names:
        study = load_study(name)
        runner = Runner(study)
        if args.check:
            problems = runner.check()
            for p in problems:
                print(f"{study.name}: {p}", file=sys.stderr)
            verdict = f"FAILED, {len(problems)} difference(s)" if problems else "every output regenerates from its runs"
            print(f"{study.name}: {verdict}")
            failed += bool(problems)
        elif args.plan is not None:
            print("\n".join(runner.plan(_named_numbers(args.plan, "--plan", "fid=2.5"))))
        elif args.dry_run:
            runner.dry_run(args.only)
        else:
            runner.resolved_claims()
            manifest = runner.run(args.only, resume=args.resume, timing=not args.no_timing,
                                  cmd="python -m ablate " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["study"]
                                  else command(study))
            if (study.root / "results").is_dir():
                write_index(study.root)
            print(f"study {study.name}: wrote {len(manifest['files'])} files to {study.out_dir()}")
            failed += _failed_exit(manifest.get("trials_failed", 0), args.allow_failed)
    if args.all:
        for p in index_differs(STUDIES.parent):
            print(p, file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _named_numbers(items: list[str], option: str, example: str) -> dict[str, float]:
    """['fid=2.5', ...] -> {'fid': 2.5}; a one-line error naming the option for anything else."""
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise AblateError(f"{option}: expected MEASURE=NUMBER, e.g. {example}, got {item!r}") from None
    return out


def cmd_report(args) -> int:
    from analysis.report import report

    refs = _named_numbers(args.hv_ref, "--hv-ref", "fid=60")
    rep = report(args.experiment or ([] if args.parent else ["default"]), args.tracking_uri or [None],
                 parents=args.parent, out=Path(args.out) if args.out else None, budget=args.budget,
                 hv_refs=refs, echo=print)
    if not args.no_log:
        from ablate.tracking.mlflow_log import log_report

        log_report(rep)
    for note in rep.notes:
        print(f"note: {note}", file=sys.stderr)
    figures = sorted({f.stem for f in rep.files if f.suffix == ".png"})
    print(f"wrote {len(rep.files)} files to {rep.out}: figures {', '.join(figures) or 'none'}; "
          f"tables {', '.join(sorted(f.name for f in rep.files if f.suffix == '.md' and f.name != 'README.md'))}")
    if rep.logged_to:
        print(f"logged under report/ to parent run(s) {', '.join(rep.logged_to)}")
    return 0


def cmd_ui(args) -> int:
    """The MLflow UI on the store, opened on each experiment's runs table (never MLflow 3's GenAI overview)."""
    import subprocess
    import threading
    import webbrowser

    from ablate.tracking.mlflow_log import (EXPERIMENT_KIND, MODEL_TRAINING, default_tracking_uri, newest_sweep,
                                            open_client, runs_dir, runs_url, write_shared_views)

    uri = args.tracking_uri or default_tracking_uri()
    host = f"http://127.0.0.1:{args.port}"
    urls = []  # (start time of its newest sweep, experiment, address)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise AblateError(f"tracking uri {uri}: no MLflow database there; run a sweep first (python -m ablate sweep "
                          "smoke), or give --tracking-uri")
    client = open_client(uri)
    for exp in client.search_experiments():
        if exp.name == "Default" and not client.search_runs([exp.experiment_id], max_results=1):
            continue
        if exp.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:  # stores made before the tag: mend them
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        parent = newest_sweep(client, exp.experiment_id)
        if parent is None:
            urls.append((0, exp.name, runs_url(exp.experiment_id, host)))
            continue
        trials, _ = write_shared_views(client, exp.experiment_id, parent)  # (again: a store made before them)
        started = client.get_run(parent).info.start_time or 0
        urls.append((started, exp.name, f"{runs_url(exp.experiment_id, host)}?viewStateShareKey={trials}"))
    urls.sort(key=lambda u: -u[0])  # the newest sweep first: the one a browser opens
    urls = [(name, url) for _, name, url in urls]
    import socket

    with socket.socket() as probe:  # a busy port: one line now, not a server that dies after the addresses
        if probe.connect_ex(("127.0.0.1", args.port)) == 0:
            raise AblateError(f"--port: {args.port} is already in use on 127.0.0.1; give another (--port 5001)")
    # this interpreter's MLflow, whatever the shell's PATH (a venv that is not activated has no `mlflow` on it)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port",
           str(args.port), "--workers", "1"]
    if uri.startswith("sqlite:///"):
        cmd += ["--default-artifact-root", (runs_dir() / "artifacts").as_uri()]
    print(" ".join(cmd))
    for name, url in urls:
        print(f"experiment {name!r}: {url}")
    if not urls:
        print(f"no experiments yet in {uri}: run a sweep, then open {host}")
    print("(each experiment's newest sweep: its trials, one row each; add &compareRunsMode=CHART for FID against "
          "speedup. MLflow's Assistant panel may open on the right the first time: close it with its X)", flush=True)
    if urls and not args.no_browser:
        def _open():
            try:
                webbrowser.get().open(urls[0][1])
            except webbrowser.Error:
                pass  # no browser here: the addresses above are printed

        threading.Timer(3.0, _open).start()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    return subprocess.call(cmd, env=env)


def _sampling_args(s: argparse.ArgumentParser) -> None:
    """Options shared by every command that samples."""
    s.add_argument("--steps", type=int, required=True, help="total sampling steps N")
    s.add_argument("--budget", type=int, default=None, help="full (base model) steps B <= N")
    s.add_argument("--method", default="vanilla",
                   help="a method's name (`python -m ablate methods` lists them) or module:Class of your own")
    s.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                   help="a knob of the method, e.g. order=2, n_block=2, use_tokens=false (repeatable)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dataset", default="mnist")
    s.add_argument("--cfg-w", type=float, default=1.0, help="classifier-free guidance weight")
    s.add_argument("--r-temp", type=float, default=7.0, help="Gumbel noise on confidences")
    s.add_argument("--sm-temp", type=float, default=1.0, help="softmax temperature multiplier")
    s.add_argument("--unmasking", default="confidence", choices=["confidence", "halton"],
                   help="which masked positions a step commits: the most confident (MaskGIT) or a 2-D Halton order")
    s.add_argument("--batch-size", type=int, default=250)
    _device_args(s)


def _device_args(s: argparse.ArgumentParser, amp: bool = True) -> None:
    """Base model and device options shared by the commands that run the base model."""
    s.add_argument("--base", default=None, metavar="native|hf:PATH",
                   help="base model: the dataset's native MaskGIT (default) or a local transformers masked-LM folder "
                        "(hf:PATH, or hf:NAME under ablate/weights/, e.g. hf:mnist-bert)")
    s.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (cuda when available; default)")
    if amp:
        s.add_argument("--amp", default="auto",
                       help="autocast of the base model: auto (GPU: bf16, else fp16; CPU: none) | fp32 | "
                             "bf16 (GPU or CPU) | fp16 (GPU)")


def cmd_eval(args) -> int:
    import json

    from ablate.evaluate import evaluate, format_table

    cfg = _eval_config(args, n_samples=args.n_samples, extractor=args.extractor, reference=args.reference)
    result = evaluate(cfg, save_samples=Path(args.save_samples) if args.save_samples else None)
    print(format_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_methods(args) -> int:
    """Every registered method with its knobs, defaults and help: what --method and --knob accept."""
    from ablate import methods

    for name, cls in sorted(methods.REGISTRY.items(), key=lambda kv: (kv[1].rank, kv[0])):
        extra = ", position-level (native base only)" if cls.position_level else ""
        print(f"{name}: {cls.label}{', learned' if cls.learned else ''}{extra}")
        for k, f in cls.Knobs.model_fields.items():
            print(f"  {k} = {f.default!r}  ({f.annotation.__name__ if hasattr(f.annotation, '__name__') else f.annotation})"
                  f"  {f.description or ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ablate", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("prepare", help="train (or verify) tokenizer, base model and classifier for a dataset")
    s.add_argument("--dataset", default="mnist",
                   help="mnist | mnist14 (14x14 tokens, wider base; for a GPU) | digits | folder:PATH (default mnist)")
    s.add_argument("--device", default="cpu", help="where to train: cpu (default, bit-for-bit reproducible) | cuda | auto")
    s.add_argument("--retrain", action="store_true", help="train anew even when trained models exist")
    s.add_argument("--out", default=None, help="folder to write (default: the cache, $ABLATE_HOME/weights/DATASET)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=0, help="torch threads (bit-for-bit retraining needs the same count)")
    s.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a training setting, e.g. base_train.steps=500 (repeatable)")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("sample", help="generate a PNG grid of samples, one class per row")
    _sampling_args(s)
    s.add_argument("--n", type=int, default=64, help="number of samples (classes in turn)")
    s.add_argument("--out", required=True, help="PNG file to write")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("eval", help="one trial without Ray/MLflow: FID/KID/precision/recall, accuracy, latency, FLOPs")
    _sampling_args(s)
    s.add_argument("--n-samples", type=int, default=1000, help="samples to generate and measure")
    s.add_argument("--extractor", default="classifier", help="FID features: classifier (fast) | inception")
    s.add_argument("--reference", default="held_out",
                   help="FID's real images: held_out (default; never seen in training) | train")
    s.add_argument("--json", default=None, help="write every measure to this JSON file")
    s.add_argument("--save-samples", default=None, metavar="DIR", help="also write the samples as PNG files")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("train-shortcut", help="record teacher trajectories and train the shortcut (cached)")
    s.add_argument("--dataset", default="mnist")
    s.add_argument("--traj-steps", type=int, default=16, help="N_train: steps of the teacher trajectories")
    s.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                   help="shortcut knobs: n_block, use_tokens, bottleneck, time_embed, train_steps, rollout, "
                        "kl_weight, traj_images (repeatable)")
    _device_args(s, amp=False)
    s.set_defaults(func=cmd_train_shortcut)

    s = sub.add_parser("train-mlm", help="train a small BERT masked LM on a dataset's tokens (a transformers base)")
    s.add_argument("--dataset", default="mnist")
    s.add_argument("--out", required=True, help="folder to write (save_pretrained + ablate.json + manifest.json)")
    s.add_argument("--threads", type=int, default=0, help="torch threads (bit-for-bit retraining needs the same count)")
    s.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="layers, hidden, heads, intermediate, steps, batch_size, lr, weight_decay, warmup, label_drop, "
                        "seed (repeatable)")
    s.set_defaults(func=cmd_train_mlm)

    s = sub.add_parser("sweep", help="run a search space with Ray Tune, tracked in MLflow (the main job)")
    s.add_argument("space", nargs="?", default="default", help="a YAML file or a name in search_spaces/ (default: default)")
    s.add_argument("--experiment", default=None, help="MLflow experiment (default: the space's name)")
    s.add_argument("--dry-run", action="store_true", help="print the trial table and run nothing")
    s.add_argument("--resume", action="store_true", help="continue the newest unfinished sweep of this space")
    s.add_argument("--tracking-uri", default=None, help="MLflow URI (default sqlite:///runs/mlflow.db)")
    s.add_argument("--ray-address", default=None, help="join an existing Ray cluster (default: a local one)")
    s.add_argument("--max-concurrent", type=int, default=None, help="trials at a time")
    s.add_argument("--device", default=None,
                   help="trial device (default: the space's `device`, auto = cuda when resources.gpu > 0)")
    s.add_argument("--no-report", action="store_true", help="skip the figures and tables at the end of the sweep")
    s.add_argument("--allow-failed", action="store_true",
                   help="exit 0 even when trials failed (default: exit 1 after running everything it could)")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("study", help="run a study (studies/NAME.yaml) end to end, plan it, or check its outputs")
    s.add_argument("name", nargs="?", default=None, help="a study's name in studies/, or a YAML path")
    s.add_argument("--check", action="store_true",
                   help="regenerate every output from the study's tracked runs alone and fail where one differs")
    s.add_argument("--all", action="store_true",
                   help="with --check: every study that commits its store, and the results index")
    s.add_argument("--index", action="store_true", help="rewrite results/README.md (and README's table) from the "
                                                        "manifests")
    s.add_argument("--dry-run", action="store_true",
                   help="print what would run (trials the store lacks) and its cost from the store's past timings")
    s.add_argument("--only", action="append", default=None, metavar="STAGE", help="run only this stage (repeatable)")
    s.add_argument("--plan", nargs="*", default=None, metavar="MEASURE=DIFF",
                   help="print how many seeds each claim needs to find these true differences (e.g. fid=2.5 "
                        "token_agreement=0.01) from the paired spread of the runs so far; runs nothing")
    s.add_argument("--resume", action="store_true",
                   help="also reopen unfinished halving/Optuna sweeps (grid stages never rerun a tracked trial)")
    s.add_argument("--allow-failed", action="store_true", help="exit 0 even when trials failed")
    s.add_argument("--no-timing", action="store_true",
                   help="do not time again: timing analyses (latency) keep their files; everything else is rewritten")
    s.set_defaults(func=cmd_study)

    s = sub.add_parser("report", help="figures (Pareto, ablations, feature error, samples) and tables from MLflow runs")
    s.add_argument("--experiment", action="extend", nargs="+", default=[], metavar="NAME",
                   help="experiment(s) to combine (repeatable; default: default)")
    s.add_argument("--tracking-uri", action="extend", nargs="+", default=[], metavar="URI",
                   help="MLflow store(s); each experiment is looked up in each (default sqlite:///runs/mlflow.db)")
    s.add_argument("--parent", action="extend", nargs="+", default=[], metavar="RUN_ID",
                   help="only the trials of these sweep parent runs")
    s.add_argument("--out", default=None, help="folder to write (default results/EXPERIMENT[+EXPERIMENT...])")
    s.add_argument("--budget", type=int, default=None,
                   help="B of the feature-error figure and sample sheet (default: the most shared budget)")
    s.add_argument("--hv-ref", action="append", default=[], metavar="MEASURE=VALUE",
                   help="hypervolume reference point, e.g. fid=60 (default: speedups 1, others worst seen + 10%%)")
    s.add_argument("--no-log", action="store_true", help="do not log the report as artifacts of the parent run(s)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("ui", help="the MLflow UI on the sweeps' store (127.0.0.1)")
    s.add_argument("--tracking-uri", default=None)
    s.add_argument("--port", type=int, default=5000)
    s.add_argument("--no-browser", action="store_true", help="print the addresses only; do not open a browser")
    s.set_defaults(func=cmd_ui)

    s = sub.add_parser("methods", help="list every method with its knobs, defaults and help")
    s.set_defaults(func=cmd_methods)

    s = sub.add_parser("schedule", help="print the full steps of a budget (the paper's rule)")
    s.add_argument("--steps", type=int, required=True, help="total steps N")
    s.add_argument("--budget", type=int, required=True, help="full steps B")
    s.set_defaults(func=cmd_schedule)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AblateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
