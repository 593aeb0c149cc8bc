"""The learned shortcut: shapes, ablation variants, trajectories on disk, training lowers the loss, caching."""

import pytest
import torch

from ablate.shortcut.cache import base_hash, load, load_or_train
from ablate.shortcut.model import Shortcut, ShortcutConfig
from ablate.shortcut.train import TrainConfig
from ablate.shortcut.trajectories import Trajectories, TrajectoryConfig, record


@pytest.mark.parametrize("n_block", [0, 1, 2])
@pytest.mark.parametrize("use_tokens", [True, False])
def test_variants_shapes_and_token_use(tiny_model, n_block, use_tokens):
    torch.manual_seed(0)
    net = Shortcut(ShortcutConfig(n_block=n_block, use_tokens=use_tokens), tiny_model.tok_emb.weight, tiny_model.position_embedding())
    torch.nn.init.normal_(net.out.weight)  # leave the zero start so the output depends on the inputs
    f = torch.randn(4, 9, 32)
    pos = torch.tensor([[0, 1]] * 4)
    a = net(f, torch.tensor([[1, 2]] * 4), pos, torch.full((4,), 0.5))
    b = net(f, torch.tensor([[3, 4]] * 4), pos, torch.full((4,), 0.5))
    assert a.shape == f.shape
    assert torch.allclose(a, b) != use_tokens  # tokens matter exactly when they are used


@pytest.mark.parametrize("n_block", [0, 1])
def test_shortcut_makes_no_tensor_off_its_inputs_device(tiny_model, n_block):
    """On a GPU every tensor the shortcut makes must follow its inputs (a CPU-made frequency table broke every
    shortcut step on CUDA); the meta device catches that here, where no GPU is."""
    net = Shortcut(ShortcutConfig(n_block=n_block), tiny_model.tok_emb.weight, tiny_model.position_embedding()).to("meta")
    meta = dict(device="meta")
    out = net(torch.empty(4, 9, 32, **meta), torch.zeros(4, 2, dtype=torch.long, **meta),
              torch.zeros(4, 2, dtype=torch.long, **meta), torch.empty(4, **meta))
    assert out.device.type == "meta" and out.shape == (4, 9, 32)


def test_shortcut_is_small_next_to_base(tiny_model):
    net = Shortcut(ShortcutConfig(), tiny_model.tok_emb.weight, tiny_model.position_embedding())
    assert net.num_params() < sum(p.numel() for p in tiny_model.parameters())


@pytest.fixture
def traj(tiny_model, tmp_path):
    cfg = TrajectoryConfig(n_images=24, steps=5, shard_size=10)
    return Trajectories(record(tiny_model, cfg, tmp_path / "traj"))


def test_trajectories_on_disk(traj):
    data = traj.load(0)
    assert len(traj.shards) == 3
    assert data["features"].shape == (10, 2, 5, 9, 32)
    assert data["order"].min() == 0 and data["order"].max() == 4


def test_training_lowers_loss(tiny_model, traj):
    from ablate.shortcut.train import train_shortcut

    _, stats = train_shortcut(tiny_model, traj, ShortcutConfig(), TrainConfig(steps=80, batch_size=8, lr=3e-3))
    assert stats["loss_last"] < 0.7 * stats["loss_first"]


def test_trained_shortcut_is_cached_and_checked(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_STORE", str(tmp_path / "store"))
    cfg = TrainConfig(steps=5, batch_size=4, trajectories=TrajectoryConfig(n_images=6, steps=4, shard_size=6))
    logs = []
    net, meta = load_or_train(tiny_model, ShortcutConfig(), cfg, log=logs.append)
    assert any("training shortcut" in line for line in logs) and meta["base_hash"] == base_hash(tiny_model)
    logs.clear()
    load_or_train(tiny_model, ShortcutConfig(), cfg, log=logs.append)
    assert logs == []  # served from the store
    other = type(tiny_model)(tiny_model.cfg)
    folder = next(p for p in (tmp_path / "store" / "shortcut").iterdir() if p.is_dir())
    from ablate.errors import AblateError

    with pytest.raises(AblateError, match="^checkpoint: .*another base model"):
        load(folder, other)


def test_sampler_feeds_the_shortcut_what_training_pairs_hold(tiny_model):
    """At every skip step the sampler hands the shortcut exactly the (f_s, tokens committed at s, their positions,
    mask ratio after s) that `pair_inputs` builds from a teacher trajectory: no off-by-one between the two.

    A spy shortcut records its inputs and returns vanilla's own next feature, so the accelerated run follows
    the vanilla trajectory of the same seed step for step."""
    from ablate import methods
    from ablate.sampling import MaskGITSampler, SamplerConfig
    from ablate.sampling.schedule import full_steps
    from ablate.shortcut.train import pair_inputs

    steps, labels = 6, torch.tensor([0, 1, 2, 0])
    skips = [t for t in range(steps) if t not in full_steps(steps, 2)]
    sampler = MaskGITSampler(tiny_model, SamplerConfig(steps, cfg_w=1.0))
    feats = []
    ref = sampler.sample(labels, torch.Generator().manual_seed(7), hooks=[lambda st, out: feats.append(out.feature)])
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, feature, new_tokens, new_positions, mask_ratio):
            seen.append((feature, new_tokens, new_positions, mask_ratio))
            return feats[skips[len(seen) - 1]]

        def num_params(self):
            return 0

    acc = methods.build("shortcut", steps=steps, budget=2)
    acc.net = Spy()
    out = sampler.sample(labels, torch.Generator().manual_seed(7), acc)
    assert torch.equal(out.tokens, ref.tokens) and torch.equal(out.order, ref.order) and len(seen) == len(skips) == 4
    data = {"order": ref.order, "tokens": ref.tokens}
    n = len(labels)
    for (feature, tokens, pos, ratio), t in zip(seen, skips):
        s = t - 1
        want_pos, want_tokens, valid, want_ratio, _ = pair_inputs(data, torch.arange(n), torch.full((n,), s))
        assert valid.all()  # one step for every row: nothing padded
        torch.testing.assert_close(feature, feats[s], rtol=0, atol=0)  # both CFG branches, f_s exactly
        assert torch.equal(pos[:n], want_pos) and torch.equal(pos[n:], want_pos)
        assert torch.equal(tokens[:n], want_tokens) and torch.equal(tokens[n:], want_tokens)
        torch.testing.assert_close(ratio[:n], want_ratio)


def _old_pair_inputs(data, img, s):
    """The format-1 pairs (every row took row 0's count): kept here only to show the test below catches it."""
    order, tokens = data["order"][img], data["tokens"][img]
    committed = order == s[:, None]
    k = int(committed[0].sum())
    pos = committed.float().argsort(dim=1, descending=True, stable=True)[:, :k]
    still_masked = order > s[:, None]
    return pos, tokens.gather(1, pos), torch.ones_like(pos, dtype=torch.bool), still_masked.float().mean(1), still_masked


@pytest.mark.parametrize("build", ["pair_inputs", pytest.param("old", marks=pytest.mark.xfail(strict=True))])
def test_mixed_step_batch_matches_what_sampling_feeds_row_by_row(tiny_model, build):
    """A training batch whose rows sit at different steps: row by row, the loss's inputs are exactly what the
    sampler hands the shortcut at that row's step (positions, tokens, mask ratio), and no position still
    masked after the step ever shows its token. The format-1 pairs (row 0's count for every row) fail it."""
    from ablate import methods
    from ablate.sampling import MaskGITSampler, SamplerConfig
    from ablate.shortcut.train import pair_inputs

    make = pair_inputs if build == "pair_inputs" else _old_pair_inputs
    steps, labels = 6, torch.tensor([0, 1, 2, 0, 1, 2])
    sampler = MaskGITSampler(tiny_model, SamplerConfig(steps, cfg_w=1.0))
    n = len(labels)
    # What sampling feeds the shortcut after each step s (a spy at every skip step of budget 1).
    fed = {}

    class Spy(torch.nn.Module):
        def forward(self, feature, new_tokens, new_positions, mask_ratio):
            fed[len(fed)] = (new_tokens[:n], new_positions[:n], mask_ratio[:n])
            return feature

        def num_params(self):
            return 0

    acc = methods.build("shortcut", steps=steps, budget=1)
    acc.net = Spy()
    # The pairs are built from the order and tokens of that same run, so the two sides see one trajectory.
    out = sampler.sample(labels, torch.Generator().manual_seed(3), acc)
    data = {"order": out.order, "tokens": out.tokens}
    s = torch.tensor([0, 3, 1, 4, 2, 0])  # mixed steps, commit counts differ between them
    counts = [int((out.order[i] == s[i]).sum()) for i in range(n)]
    assert len(set(counts)) > 1
    pos, tokens, valid, ratio, masked = make(data, torch.arange(n), s)
    for i in range(n):
        want_tokens, want_pos, want_ratio = (x[i] for x in fed[int(s[i])])
        k = int(valid[i].sum())
        assert torch.equal(pos[i, :k], want_pos) and torch.equal(tokens[i, :k], want_tokens), f"row {i} (step {s[i]})"
        torch.testing.assert_close(ratio[i], want_ratio)
        seen = pos[i][valid[i]]
        assert not masked[i, seen].any(), f"row {i} sees a token that is still masked after its step"


def test_training_format_is_part_of_the_store_key(tiny_model, tmp_path, monkeypatch):
    """A shortcut trained under an older training format is never served for the current one."""
    from ablate.shortcut import train as training

    monkeypatch.setenv("ABLATE_STORE", str(tmp_path / "store"))
    cfg = TrainConfig(steps=3, batch_size=4, trajectories=TrajectoryConfig(n_images=6, steps=4, shard_size=6))
    monkeypatch.setattr(training, "TRAINING_FORMAT", training.TRAINING_FORMAT - 1)
    load_or_train(tiny_model, ShortcutConfig(), cfg, log=lambda *_: None)
    monkeypatch.undo()
    monkeypatch.setenv("ABLATE_STORE", str(tmp_path / "store"))
    logs = []
    _, meta = load_or_train(tiny_model, ShortcutConfig(), cfg, log=logs.append)
    assert any("recording" in line for line in logs) and any("training shortcut" in line for line in logs)
    assert meta["format"] == training.TRAINING_FORMAT
    assert len(list((tmp_path / "store" / "shortcut").glob("*/DONE.json"))) == 2


def test_resume_key_of_a_shortcut_trial_follows_the_training_format(monkeypatch):
    """The method's training format is the shortcut module's TRAINING_FORMAT, and a change of it reruns its trials
    (tests/test_trial_keys.py checks the same for every learned method)."""
    from ablate.methods.shortcut import ShortcutMethod
    from ablate.shortcut import train as training
    from ablate.tracking.mlflow_log import trial_key

    assert ShortcutMethod.training_format == training.TRAINING_FORMAT
    sc, fc = {"method": "shortcut", "steps": 16, "budget": 4, "knobs": {}}, {"method": "feature_cache", "steps": 16}
    before = trial_key(sc), trial_key(fc)
    monkeypatch.setattr(ShortcutMethod, "training_format", training.TRAINING_FORMAT + 1)
    assert trial_key(sc) != before[0] and trial_key(fc) == before[1]


def test_student_rollout_with_a_perfect_student_is_the_teacher_pair(tiny_model, traj):
    """`rollout_tokens: student` commits tokens sampled from the student's features and takes as target the base
    model's feature on that state. A student whose head puts all mass on the teacher's tokens must rebuild the
    teacher's own state and its stored next feature; with other tokens the state holds exactly those tokens at
    the positions committed at that step (earlier ones the teacher's, later ones masked) and the target is the
    base model's feature on it, the unconditional branch with the null label."""
    from ablate.shortcut.train import pair_inputs, student_state

    data = traj.load(0)
    n, vocab = data["tokens"].shape[0], tiny_model.cfg.vocab_size
    img, s = torch.arange(n), torch.tensor([1, 2, 1, 0, 2, 1, 2, 0, 1, 2])
    br = torch.tensor([0, 1] * (n // 2))
    order, tokens = data["order"][img], data["tokens"][img]
    before = torch.where(order < s[:, None], tokens, torch.full_like(tokens, tiny_model.mask_id))

    class Perfect(torch.nn.Module):  # the base model, with a head that names the given tokens
        def __init__(self, base, want):
            super().__init__()
            self.base, self.want, self.num_classes, self.mask_id = base, want, base.num_classes, base.mask_id

        def head(self, feature):
            return torch.nn.functional.one_hot(self.want, vocab).float() * 1e4

        def forward(self, tokens, labels):
            return self.base(tokens, labels)

    gen = torch.Generator().manual_seed(0)
    new, state, target = student_state(data, img, br, s, Perfect(tiny_model, tokens), None, before, gen, 1.0)
    pos, want_new, valid, _, _ = pair_inputs(data, img, s)
    assert torch.equal(new, want_new)
    assert torch.equal(state, torch.where(order <= s[:, None], tokens, torch.full_like(tokens, tiny_model.mask_id)))
    rows = torch.arange(n)
    torch.testing.assert_close(target, data["features"][img, br][rows, s + 1], atol=2e-2, rtol=1e-2)  # stored fp16

    other = (tokens + 1) % vocab
    new, state, target = student_state(data, img, br, s, Perfect(tiny_model, other), None, before, gen, 1.0)
    assert torch.equal(new, other.gather(1, pos).masked_fill(~valid, 0))
    want_state = torch.where(order < s[:, None], tokens, torch.where(order == s[:, None], other, tiny_model.mask_id))
    assert torch.equal(state, want_state)
    labels = torch.where(br == 1, torch.full_like(br, tiny_model.num_classes), data["labels"][img])
    torch.testing.assert_close(target, tiny_model(want_state, labels)[1])


def test_student_rollout_trains_and_is_its_own_store_entry(tiny_model, traj, tmp_path, monkeypatch):
    from ablate.shortcut.cache import train_key
    from ablate.shortcut.train import train_shortcut

    cfg = TrainConfig(steps=60, batch_size=8, lr=3e-3, rollout=3, rollout_tokens="student")
    _, stats = train_shortcut(tiny_model, traj, ShortcutConfig(), cfg)
    assert stats["loss_last"] < 0.8 * stats["loss_first"]
    # The default (teacher) leaves the key as it was before the knob existed, so stored shortcuts are found.
    assert "rollout_tokens" not in train_key(TrainConfig()) and train_key(cfg)["rollout_tokens"] == "student"


def test_shortcut_trajectories_follow_the_sampler_guidance():
    """A trial's shortcut learns from trajectories recorded at the trial's guidance and temperatures (unless
    `traj_cfg_w` pins them), so the default sampler keeps the shipped shortcut's key."""
    from ablate.evaluate import EvalConfig, setup
    from ablate.sampling import SamplerConfig

    st = setup(EvalConfig(method="shortcut", steps=16, budget=4, cfg_w=2.8, r_temp=4.0, n_samples=2), prepare=False)
    traj = st.method.train_cfg.trajectories
    assert (traj.cfg_w, traj.r_temp, traj.sm_temp) == (2.8, 4.0, 1.0)
    st = setup(EvalConfig(method="shortcut", steps=16, budget=4, cfg_w=2.8, n_samples=2, knobs={"traj_cfg_w": 1.0}),
               prepare=False)
    assert st.method.train_cfg.trajectories.cfg_w == 1.0
    from ablate import methods

    m = methods.build("shortcut", steps=16, budget=4)
    before = m.train_cfg
    m.follow_sampler(SamplerConfig())
    assert m.train_cfg == before  # the default sampler is what the default shortcut was trained for


def test_residual_shortcut_gets_at_sampling_exactly_its_training_pairs(tiny_model):
    """At every skipped step the sampler hands the residual shortcut the first-order forecast from the last two
    full steps, the tokens committed since the last full step with their positions, and the mask ratio; these
    are what `residual_inputs` builds from the teacher trajectory of the same run. A spy returns the teacher's
    own feature so the run follows vanilla step for step."""
    from ablate import methods
    from ablate.sampling import MaskGITSampler, SamplerConfig
    from ablate.shortcut.train import forecast_sources, residual_inputs

    steps, labels = 8, torch.tensor([0, 1, 2, 0])
    n = len(labels)
    sampler = MaskGITSampler(tiny_model, SamplerConfig(steps, cfg_w=1.0))
    feats = []
    ref = sampler.sample(labels, torch.Generator().manual_seed(5), hooks=[lambda st, out: feats.append(out.feature)])
    acc = methods.build("residual_shortcut", steps=steps, budget=3)
    skips = [t for t in range(steps) if t not in acc.full]
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, feature, new_tokens, new_positions, mask_ratio):
            seen.append((feature, new_tokens, new_positions, mask_ratio))
            return feats[skips[len(seen) - 1]]

        def num_params(self):
            return 0

    acc.net = Spy()
    out = sampler.sample(labels, torch.Generator().manual_seed(5), acc)
    assert torch.equal(out.tokens, ref.tokens) and len(seen) == len(skips)
    features = torch.stack(feats, 1).view(2, n, steps, *feats[0].shape[1:]).transpose(0, 1)  # (n, br, N, L, d)
    data = {"features": features, "order": ref.order, "tokens": ref.tokens}
    src = forecast_sources(acc.full, steps)
    assert sorted(src) == skips
    img, br = torch.arange(n).repeat(2), torch.arange(2).repeat_interleave(n)
    for (feature, tokens, pos, ratio), t in zip(seen, skips):
        forecast, want_pos, want_tokens, valid, want_ratio, _ = residual_inputs(data, img, br, torch.full((2 * n,), t), src)
        assert valid.all()
        torch.testing.assert_close(feature, forecast, rtol=1e-5, atol=1e-5)
        assert torch.equal(pos, want_pos) and torch.equal(tokens, want_tokens), f"step {t}"
        torch.testing.assert_close(ratio, want_ratio)


def test_untrained_residual_shortcut_is_taylor(tiny_model):
    from ablate import methods
    from ablate.sampling import MaskGITSampler, SamplerConfig

    sampler = MaskGITSampler(tiny_model, SamplerConfig(8))
    acc = methods.build("residual_shortcut", steps=8, budget=3)
    acc.net = Shortcut(acc.sc_cfg, tiny_model.tok_emb.weight, tiny_model.position_embedding()).eval()  # zero output
    a = sampler.sample(torch.tensor([0, 1, 2]), torch.Generator().manual_seed(1), acc)
    b = sampler.sample(torch.tensor([0, 1, 2]), torch.Generator().manual_seed(1), methods.build("taylor", steps=8, budget=3))
    assert torch.equal(a.tokens, b.tokens)


def test_residual_shortcut_trains_and_is_cached(tiny_model, tmp_path, monkeypatch):
    from ablate import methods

    monkeypatch.setenv("ABLATE_STORE", str(tmp_path / "store"))
    acc = methods.build("residual_shortcut", steps=5, budget=2, traj_images=12, train_steps=60)
    logs = []
    acc.prepare(tiny_model, log=logs.append)
    assert any("training residual shortcut" in line for line in logs)
    assert acc.meta["stats"]["loss_last"] < acc.meta["stats"]["loss_first"]
    logs.clear()
    methods.build("residual_shortcut", steps=5, budget=2, traj_images=12, train_steps=60).prepare(tiny_model, log=logs.append)
    assert logs == []
