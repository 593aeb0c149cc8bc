"""Device logic on a CPU-only machine: CUDA is mocked where a path needs it (resolution, autocast dtype,
CUDA-event timing, torch-fidelity on the GPU, Ray GPU shares), and the autocast path of the sampler
runs for real with CPU autocast."""

import pytest
import torch

from ablate import methods, device
from ablate.cli import main
from ablate.errors import AblateError
from ablate.sampling import MaskGITSampler, SamplerConfig


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch believes one CUDA device (with bf16) exists."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    return monkeypatch


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_resolve_without_cuda(no_cuda):
    assert device.resolve_device("cpu") == torch.device("cpu")
    assert device.resolve_device("auto") == torch.device("cpu")
    assert device.resolve_device(None) == torch.device("cpu")
    with pytest.raises(AblateError, match="^device: cuda requested but torch sees no CUDA device"):
        device.resolve_device("cuda")
    with pytest.raises(AblateError, match="^device: unknown device 'tpu'"):
        device.resolve_device("tpu")


def test_resolve_with_cuda(fake_cuda):
    assert device.resolve_device("auto") == torch.device("cuda")
    assert device.resolve_device("cuda") == torch.device("cuda")
    assert device.resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(AblateError, match=r"^device: cuda:3 requested but torch sees 1 CUDA device"):
        device.resolve_device("cuda:3")


def test_autocast_dtype_cpu():
    assert device.autocast_dtype(torch.device("cpu"), "auto") is None
    assert device.autocast_dtype(torch.device("cpu"), "fp32") is None
    assert device.autocast_dtype(torch.device("cpu"), "bf16") is torch.bfloat16  # only when asked for
    with pytest.raises(AblateError, match="^amp: fp16 autocast runs on a GPU only"):
        device.autocast_dtype(torch.device("cpu"), "fp16")
    with pytest.raises(AblateError, match="^amp: unknown autocast 'int8'"):
        device.autocast_dtype(torch.device("cpu"), "int8")


def test_autocast_dtype_cuda(fake_cuda):
    cuda = torch.device("cuda")
    assert device.autocast_dtype(cuda, "auto") is torch.bfloat16
    assert device.autocast_dtype(cuda, "fp16") is torch.float16
    assert device.autocast_dtype(cuda, "fp32") is None

    class NoAmp(torch.nn.Module):
        autocast_ok = False

    assert device.autocast_dtype(cuda, "auto", NoAmp()) is None  # the model does not allow it
    fake_cuda.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert device.autocast_dtype(cuda, "auto") is torch.float16


def test_timer_uses_cuda_events(monkeypatch):
    calls = []

    class FakeEvent:
        def __init__(self, enable_timing=False):
            assert enable_timing
            self.t = None

        def record(self):
            self.t = len(calls)
            calls.append("record")

        def synchronize(self):
            calls.append("sync")

        def elapsed_time(self, end):
            return 250.0  # milliseconds

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    with device.Timer("cuda") as t:
        pass
    assert t.seconds == 0.25 and calls == ["record", "record", "sync"]
    with device.Timer("cpu") as t:  # perf_counter, no event
        pass
    assert 0 <= t.seconds < 1 and calls == ["record", "record", "sync"]


def test_synchronize_only_on_cuda(fake_cuda):
    seen = []
    fake_cuda.setattr(torch.cuda, "synchronize", lambda d=None: seen.append(d))
    device.synchronize("cpu")
    assert seen == []
    device.synchronize("cuda")
    device.synchronize(None)
    assert seen == ["cuda", None]


def test_fidelity_runs_on_the_gpu_of_the_trial(monkeypatch):
    """The feature network and its inputs go to the trial's device (a spy stands in for CUDA here)."""
    from ablate import pretrained
    from ablate.metrics import quality

    bundle = pretrained.load("mnist")
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    plain = quality.features(images, bundle, "classifier")
    moved = []
    real_module_to, real_tensor_to = torch.nn.Module.to, torch.Tensor.to

    def module_to(self, *a, **kw):
        dev = a[0] if a else kw.get("device")
        if isinstance(dev, torch.device) and dev.type == "cuda":
            moved.append(("net", dev))
            return self
        return real_module_to(self, *a, **kw)

    def tensor_to(self, *a, **kw):
        dev = a[0] if a else kw.get("device")
        if isinstance(dev, torch.device) and dev.type == "cuda":
            moved.append(("input", dev))
            return self
        return real_tensor_to(self, *a, **kw)

    monkeypatch.setattr(torch.nn.Module, "to", module_to)
    monkeypatch.setattr(torch.Tensor, "to", tensor_to)
    got = quality.features(images, bundle, "classifier", torch.device("cuda"))
    assert ("net", torch.device("cuda")) in moved and ("input", torch.device("cuda")) in moved
    assert torch.equal(got, plain)


@pytest.mark.parametrize("method,budget", [("vanilla", None), ("feature_cache", 2), ("taylor", 2), ("ml_cache", 2)])
def test_sampler_under_autocast(tiny_model, method, budget):
    """The mixed-precision path (CPU autocast stands in for the GPU's): logits in bf16, every position filled."""
    dtypes = []
    acc = methods.build(method, steps=5, budget=budget)
    sampler = MaskGITSampler(tiny_model, SamplerConfig(steps=5), amp_dtype=torch.bfloat16)
    out = sampler.sample(torch.tensor([0, 1, 2]), torch.Generator().manual_seed(0), acc,
                         hooks=[lambda s, o: dtypes.append(o.logits.dtype)])
    assert (out.tokens < tiny_model.mask_id).all()
    assert dtypes[0] == torch.bfloat16


def test_sampler_runs_the_model_under_the_autocast_it_is_given(tiny_model):
    """amp_dtype reaches the model's forward (CPU autocast runs bf16, so this needs no GPU), and None means
    plain fp32: the forward then sees no autocast at all."""
    seen = []
    forward = tiny_model.forward

    def spy(*a, **kw):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return forward(*a, **kw)

    tiny_model.forward = spy
    try:
        labels = torch.tensor([0, 1, 2, 0])
        MaskGITSampler(tiny_model, SamplerConfig(steps=3), amp_dtype=None).generate(labels, seed=1, batch_size=2)
        assert seen and set(seen) == {None}
        seen.clear()
        MaskGITSampler(tiny_model, SamplerConfig(steps=3), amp_dtype=torch.bfloat16).generate(labels, seed=1,
                                                                                              batch_size=2)
        assert seen and set(seen) == {torch.bfloat16}
    finally:
        del tiny_model.forward


def test_noise_comes_from_a_cpu_generator():
    from ablate.sampling.sampler import _gumbel

    a = _gumbel((2, 3), torch.Generator().manual_seed(0))
    b = _gumbel((2, 3), torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(a, b)


def test_eval_cuda_without_cuda_one_line(no_cuda, capsys, ablate_home):
    assert main(["eval", "--steps", "4", "--n-samples", "4", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: device: cuda requested"), err
    assert main(["eval", "--steps", "4", "--n-samples", "4", "--device", "gpu"]) == 2
    assert capsys.readouterr().err.startswith("error: device: unknown device 'gpu'")


def test_train_shortcut_cuda_without_cuda(no_cuda, capsys, ablate_home):
    assert main(["train-shortcut", "--device", "cuda"]) == 2
    assert capsys.readouterr().err.startswith("error: device:")


# -- sweeps: the trial's device and its share of a GPU ------------------------------------------------
SPACE = "name: g\nsteps: 8\nresources: {{cpu: 2, gpu: {gpu}}}\n{extra}grid: [{{method: feature_cache, budget: 2}}]\n"


def _space(tmp_path, gpu, extra="", device_override=None):
    from ablate.sweep.space import load_space

    path = tmp_path / "g.yaml"
    path.write_text(SPACE.format(gpu=gpu, extra=extra))
    return load_space(path, device=device_override)


def test_space_gpu_share_means_cuda_trials(tmp_path):
    from ablate.sweep.space import grid_trials

    space = _space(tmp_path, 0.5)
    assert space.trial_device() == "cuda" and space.trial_resources() == {"cpu": 2.0, "gpu": 0.5}
    assert {t.device for t in grid_trials(space)} == {"cuda"}
    cpu = _space(tmp_path, 0.5, device_override="cpu")  # --device cpu: no GPU asked for
    assert cpu.trial_resources() == {"cpu": 2.0, "gpu": 0.0} and {t.device for t in grid_trials(cpu)} == {"cpu"}
    plain = _space(tmp_path, 0)
    assert plain.trial_device() == "cpu" and plain.trial_resources()["gpu"] == 0.0


def test_space_cuda_needs_a_gpu_share(tmp_path):
    with pytest.raises(AblateError, match=r"^device: cuda needs resources\.gpu > 0"):
        _space(tmp_path, 0, extra="device: cuda\n")
    with pytest.raises(AblateError, match=r"^device: cuda needs resources\.gpu > 0"):
        _space(tmp_path, 0, device_override="cuda")
    with pytest.raises(AblateError, match=r"^device: "):
        _space(tmp_path, 1, extra="device: tpu\n")


def test_gpu_default_space():
    from ablate.sweep.space import grid_trials, load_space

    space = load_space("gpu_default")
    trials = grid_trials(space)
    assert space.resources.gpu > 0 and space.eval.extractor == "inception" and space.eval.n_samples >= 10_000
    assert {t.device for t in trials} == {"cuda"} and {t.steps for t in trials} == {16, 32}
    assert {"shortcut", "feature_cache", "taylor", "step_reduction"} <= {t.method for t in trials}


def test_tune_asks_ray_for_the_gpu_share(tmp_path, monkeypatch):
    """The trainable is wrapped with the space's GPU share (what makes Ray hand the trial a GPU)."""
    from ray import tune

    from ablate.sweep import run

    seen = {}
    monkeypatch.setattr(tune, "with_resources", lambda fn, res: seen.setdefault("resources", res) and fn)

    class FakeTuner:
        def __init__(self, trainable, **kw):
            seen["param_space"] = kw["param_space"]

        def fit(self):
            return "fitted"

    monkeypatch.setattr(tune, "Tuner", FakeTuner)
    monkeypatch.setenv("ABLATE_RUNS", str(tmp_path / "runs"))
    space = _space(tmp_path, 0.25)
    assert run._tune(space, {"trial": {"device": "cuda"}}, None, 1, "g") == "fitted"
    assert seen["resources"] == {"cpu": 2.0, "gpu": 0.25}


def test_trial_key_unchanged_by_new_defaults():
    """Sweeps begun before base/device/amp existed still resume."""
    from ablate.tracking.mlflow_log import trial_key

    old = {"dataset": "mnist", "method": "vanilla", "steps": 8}
    assert trial_key({**old, "base": None, "device": "cpu", "amp": "auto"}) == trial_key(old)
    assert trial_key({**old, "device": "cuda"}) != trial_key(old)
    cpu = {**old, "device": "cpu"}
    assert trial_key({**cpu, "amp": "fp32"}) == trial_key({**cpu, "amp": "auto"})  # both run fp32
    assert trial_key({**cpu, "amp": "bf16"}) != trial_key(cpu)  # --resume never mixes fp32 and bf16 runs
