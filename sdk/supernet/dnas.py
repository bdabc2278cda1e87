"""FBNet, ProxylessNAS and LightNAS on one search supernet (``dnas_net``), as ``searches`` strategies.

Architecture parameters are logits over each slot's candidates (``dnas_space``); weight steps
(SGD, the training split) alternate with architecture steps (Adam, a held-out fifth of the
training split, as FBNet's 80/20 split of ImageNet's training set) after a weight-only warm-up.
The latency of an architecture distribution is ``fixed + sum(weights * table)`` over the device
profile's per-op tables, so the argmax architecture's latency is ``profile.predict`` of its spec.

- ``fbnet`` (Wu et al. 2019, arXiv 1812.03443, Sec. 3-4): soft Gumbel-softmax over every op,
  temperature 5.0 times exp(-0.045) per epoch, loss CE * alpha * log(LAT_ms)^beta with alpha 0.2,
  beta 0.6, Adam at 0.01 for the logits (their weight decay 5e-4: decoupled here). alpha and beta
  as in JunrQ/NAS ``fbnet/fbnet-symbol/FBNet.py`` (an FBNet reimplementation; the official
  facebookresearch/mobile-vision holds the searched models, not the search).
- ``proxyless`` (Cai et al. 2019): binarized paths — a weight step runs one path per slot sampled
  from softmax(alpha); an architecture step samples two, runs the gated active one and the
  detached other, and turns the gates' gradients into the logits' with ``MixedEdge``'s estimator,
  then shifts the two logits so the others' probabilities stay (``rescale_updated_arch_param``);
  a skip drawn active leaves its slot's logits alone (``set_arch_param_grad``), all in
  ``search/modules/mix_op.py``. Loss ``mul#log``: alpha * CE * (log E[LAT] / log T)^beta, alpha
  0.2, beta 0.3, or ``add#linear``: CE + lambda (E[LAT] - T) / T, lambda 0.1; Adam lr 1e-3,
  beta1 0; logits initialised N(0, 1e-3); an architecture step every 5 weight steps; 40 of 160
  epochs warm-up (``search/imagenet_arch_search.py``, ``nas_manager.py``; all at
  mit-han-lab/proxylessnas@80c1c37c8b9ad4f48f1f422da0b39c6af2cac799).
- ``lightnas`` (Luo et al., DAC 2022, "You Only Search Once"): one hard Gumbel-softmax path per
  slot (straight-through), loss CE + lambda (LAT / T - 1) with LAT the sampled path's latency, and
  lambda learned by ascent: lambda <- max(0, lambda + 5e-4 (LAT / T - 1)) after every
  architecture step. Its code was not found in the reference index (only its README), so the
  constants are the paper's as issue 15 states them, and the temperature schedule and the logits'
  Adam rate are FBNet's.

In every strategy the weights minimise the cross-entropy only (the latency terms do not depend on
them). Weight steps run under the ``tf.distribute`` strategy in scope (``strategy.run``, gradients
summed over replicas, as ``supernet.train``); the architecture steps update one set of logits in
the cross-replica context. Steps run eagerly (see ``_Search._pass``). A search epoch is one pass
over the weight split; a checkpoint after every epoch makes a rerun continue, and a finished
search returns its ``result.json``. An argmax over the budget is moved to cheaper ops
(``DnasSpace.within_budget``) and the result's notes say so.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from edgetailor._io import check_output_folder, write_json
from edgetailor.arch import spaces
from edgetailor.errors import DatasetError, SearchError
from edgetailor.supernet import data, searches
from edgetailor.supernet.dnas_net import SearchNet
from edgetailor.supernet.dnas_space import SKIP, DnasSpace
from edgetailor.supernet.evaluate import CALIBRATION_IMAGES

STATE = "search_state.json"
FORMAT = "edgetailor-dnas-state/1"
ARCH_FRACTION = 0.2        # FBNet trains weights on 80 % of ImageNet's training set, theta on 20 % (Sec. 4.1)
WEIGHT_LR = 0.1            # SGD per 64 images, cosine: FBNet's 0.1 (Sec. 4.1); momentum 0.9 as train.py
WEIGHT_DECAY = 4e-5        # proxylessnas imagenet_arch_search.py ``--weight_decay`` (80c1c37c)
TAU0, TAU_DECAY = 5.0, 0.045  # FBNet Sec. 4.1: temperature 5.0, times exp(-0.045) every epoch


@dataclass(frozen=True)
class Method:
    """A strategy's constants (sources in the module docstring)."""

    name: str
    arch_lr: float
    arch_beta1: float
    arch_decay: float
    arch_every: int            # weight steps per architecture step
    warmup: float              # share of the epochs that train weights only
    init_std: float            # logits ~ N(0, init_std); 0: uniform
    loss: str                  # "fbnet", "mul#log", "add#linear", "lagrangian"
    alpha: float = 0.0
    beta: float = 0.0
    lam: float = 0.0           # add#linear's lambda; lightnas: the multiplier's ascent rate


FBNET = Method("fbnet", 0.01, 0.9, 5e-4, 4, 10 / 90, 0.0, "fbnet", alpha=0.2, beta=0.6)
PROXYLESS = Method("proxyless", 1e-3, 0.0, 0.0, 5, 40 / 160, 1e-3, "mul#log", alpha=0.2, beta=0.3, lam=0.1)
LIGHTNAS = Method("lightnas", 0.01, 0.9, 0.0, 4, 10 / 90, 0.0, "lagrangian", lam=5e-4)
KNOBS = {"loss": str, "arch_lr": float, "alpha": float, "beta": float, "lam": float, "warmup": float}


def run_fbnet(request: searches.Request) -> searches.Result:
    return _run(request, FBNET)


def run_proxyless(request: searches.Request) -> searches.Result:
    return _run(request, PROXYLESS)


def run_lightnas(request: searches.Request) -> searches.Result:
    return _run(request, LIGHTNAS)


def _method(base: Method, settings: dict) -> Method:
    unknown = sorted(set(settings) - set(KNOBS))
    if unknown:
        raise SearchError(f"{base.name} search has no setting {unknown[0]!r}; settings: {', '.join(KNOBS)}")
    method = replace(base, **{k: KNOBS[k](v) for k, v in settings.items()})
    allowed = {"proxyless": ("mul#log", "add#linear")}.get(base.name, (base.loss,))
    if method.loss not in allowed:
        raise SearchError(f"{base.name} search takes loss {' or '.join(allowed)} (got {method.loss!r})")
    return method


# --- the latency terms -------------------------------------------------------------------------

def _probs(logits, mask):
    return tf.nn.softmax(tf.where(mask, logits, -1e9), axis=-1)


def _gumbel(logits, mask, tau: float, seed, hard: bool):
    """Gumbel-softmax weights per slot (straight-through one-hot with ``hard``)."""
    u = tf.random.stateless_uniform(tf.shape(logits), seed, minval=1e-10, maxval=1.0)
    soft = _probs((logits - tf.math.log(-tf.math.log(u))) / tau, mask)
    if not hard:
        return soft
    one_hot = tf.one_hot(tf.argmax(soft, axis=-1), tf.shape(soft)[-1])
    return one_hot - tf.stop_gradient(soft) + soft


class _Search:
    """The state of one run: network, logits, optimizers, data, and the two kinds of step."""

    def __init__(self, request: searches.Request, method: Method, search: DnasSpace, source: data.Source):
        self.request, self.method, self.search = request, method, search
        self.strategy = tf.distribute.get_strategy()
        n_arch = max(request.batch_size, int(len(source.train_labels) * ARCH_FRACTION))
        n_weight = len(source.train_labels) - n_arch
        if n_weight < request.batch_size:
            raise DatasetError(f"{source.name}: {len(source.train_labels)} training images cannot fill a batch of "
                               f"{request.batch_size} for the weights and one for the architecture (a fifth "
                               f"held out); the search needs at least {2 * request.batch_size}")
        weights_part = replace(source, train=source.train[:n_weight], train_labels=source.train_labels[:n_weight])
        arch_part = replace(source, train=source.train[n_weight:], train_labels=source.train_labels[n_weight:])
        self.weight_images = data.TrainImages(weights_part, request.resolution, request.batch_size, request.seed)
        self.arch_images = data.TrainImages(arch_part, request.resolution, request.batch_size, request.seed + 1)
        self.table = tf.constant(search.table, tf.float32)
        self.mask = tf.constant(search.mask)
        tf.random.set_seed(request.seed)
        with self.strategy.scope():
            self.net = SearchNet(search, len(source.classes))
            init = np.random.default_rng(request.seed).normal(0.0, method.init_std, search.table.shape) \
                if method.init_std else np.zeros(search.table.shape)
            self.logits = tf.Variable(init.astype(np.float32), name="arch_logits")
            self.lam = tf.Variable(0.0, name="lagrange_multiplier")
            self.weight_opt = tf.keras.optimizers.SGD(WEIGHT_LR * request.batch_size / 64, momentum=0.9,
                                                      nesterov=True, weight_decay=WEIGHT_DECAY)
            self.weight_opt.exclude_from_weight_decay(var_names=["bn_", "bias"])
            self.arch_opt = tf.keras.optimizers.Adam(method.arch_lr, beta_1=method.arch_beta1,
                                                     weight_decay=method.arch_decay or None)
        dummy = tf.zeros([1, request.resolution, request.resolution, 3])
        self.net(dummy, "one", [0] * len(search.slots), tf.ones(len(search.slots)))  # make the variables
        self.last_pairs: list[tuple[int, int]] = []
        self.weight_opt.build(self.net.trainable_variables)
        self.arch_opt.build([self.logits])
        self.checkpoint = tf.train.Checkpoint(net=self.net, logits=self.logits, lam=self.lam,
                                              weight_opt=self.weight_opt, arch_opt=self.arch_opt)

    # --- steps ---------------------------------------------------------------------------------

    def _pass(self, mode: str, images, labels, picks, gates):
        """The network's gradient pass under the strategy: mean cross-entropy, its gradients for
        the weights and for the gates. Eager: traced steps of the whole space took over 13 minutes
        to build here (pure-Python protobuf), longer than the searches they would speed up."""
        net, variables, batch = self.net, self.net.trainable_variables, self.request.batch_size
        gates = tf.convert_to_tensor(gates, tf.float32)

        def replica(images, labels):
            with tf.GradientTape() as tape:
                tape.watch(gates)
                out = net(images, mode, picks, gates, training=True)
                ce = tf.keras.losses.sparse_categorical_crossentropy(labels, out, from_logits=True)
                loss = tf.nn.compute_average_loss(ce, global_batch_size=batch)
            grads = tape.gradient(loss, [*variables, gates], unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return loss, grads[:-1], grads[-1]

        loss, grads, gate_grads = self.strategy.run(replica, args=(images, labels))
        reduce = lambda v: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)  # noqa: E731
        return float(reduce(loss)), grads, reduce(gate_grads)

    def _apply(self, grads) -> None:
        variables, optimizer = self.net.trainable_variables, self.weight_opt
        self.strategy.run(lambda total: optimizer.apply_gradients(zip(total, variables)), args=(grads,))

    def _sample(self, seed, tau: float) -> np.ndarray:
        """One candidate per slot: from softmax(alpha) (ProxylessNAS's binarize, MODE None) or the
        argmax of a Gumbel sample (LightNAS's hard path)."""
        if self.method.name == "lightnas":
            return tf.argmax(_gumbel(self.logits, self.mask, tau, seed, hard=False), axis=-1).numpy()
        probs = _probs(self.logits, self.mask).numpy()
        rng = np.random.default_rng(seed.numpy())
        return np.array([rng.choice(len(p), p=p / p.sum()) for p in probs])

    def weight_step(self, images, labels, tau: float, seed, rate: float) -> float:
        """One SGD update of the weights on the architecture sampled for this step; returns the CE."""
        slots = len(self.search.slots)
        if self.method.name == "fbnet":  # every op, weighted by a soft Gumbel sample
            gates = _gumbel(self.logits, self.mask, tau, seed, hard=False)
            loss, grads, _ = self._pass("all", images, labels, np.zeros(slots), gates)
        else:
            loss, grads, _ = self._pass("one", images, labels, self._sample(seed, tau), np.ones(slots))
        self.weight_opt.learning_rate = rate  # a variable: no retrace
        self._apply(grads)
        return loss

    def arch_step(self, images, labels, tau: float, seed) -> tuple[float, float]:
        """One update of the logits; returns (loss, the latency the loss saw [ms]). The network's
        gradient reaches the logits through the gates: d loss/d theta = d loss/d gates * d gates/d theta."""
        method, search, budget = self.method, self.search, self.request.budget_ms
        if method.name == "proxyless":
            return self._proxyless_arch_step(images, labels, seed)
        with tf.GradientTape() as tape:
            gates = _gumbel(self.logits, self.mask, tau, seed, hard=method.name == "lightnas")
            latency = search.fixed_ms + tf.reduce_sum(gates * self.table)
        if method.name == "fbnet":
            ce, _, gate_grads = self._pass("all", images, labels, np.zeros(len(search.slots)), gates)
        else:  # one hard path per slot, its straight-through weight as the gate
            picks = tf.argmax(gates, axis=-1)
            chosen = tf.gather(gates, picks, batch_dims=1)
            ce, _, chosen_grads = self._pass("one", images, labels, picks.numpy(), chosen)
            gate_grads = tf.one_hot(picks, gates.shape[-1]) * chosen_grads[:, None]
        with tape:  # the loss as a function of the gates and the latency, its network part linearised
            if method.name == "fbnet":  # CE * alpha * log(LAT)^beta
                scale = method.alpha * tf.math.log(latency) ** method.beta
                surrogate = tf.stop_gradient(scale) * tf.reduce_sum(gate_grads * gates) + ce * scale
                loss = ce * float(scale)
            else:  # CE + lambda (LAT / T - 1)
                surrogate = tf.reduce_sum(gate_grads * gates) + self.lam * (latency / budget - 1.0)
                loss = ce + float(self.lam) * (float(latency) / budget - 1.0)
        self.arch_opt.apply_gradients([(tape.gradient(surrogate, self.logits), self.logits)])
        if method.name == "lightnas":  # the multiplier's ascent, clipped at 0
            self.lam.assign(tf.maximum(0.0, self.lam + method.lam * (latency / budget - 1.0)))
        return float(loss), float(latency)

    def _proxyless_arch_step(self, images, labels, seed) -> tuple[float, float]:
        method, search, budget = self.method, self.search, self.request.budget_ms
        old = self.logits.numpy()
        probs = _probs(self.logits, self.mask).numpy()
        rng = np.random.default_rng(seed.numpy())
        pairs = []
        for i, p in enumerate(probs):  # two ops drawn by probs, one made active by their renormalised probs
            two = rng.choice(len(p), size=2, replace=False, p=p / p.sum())
            local = np.exp(old[i, two] - old[i, two].max())
            active = rng.choice(2, p=local / local.sum())
            pairs.append((int(two[active]), int(two[1 - active])))
        ce, _, gate_grads = self._pass("two", images, labels, np.array(pairs), np.tile([1.0, 0.0], (len(pairs), 1)))
        with tf.GradientTape() as tape:
            expected = search.fixed_ms + tf.reduce_sum(_probs(self.logits, self.mask) * self.table)
            if method.loss == "mul#log":  # alpha * CE * (log E / log T)^beta
                factor = method.alpha * (tf.math.log(expected) / math.log(budget)) ** method.beta
                loss_direct, gate_scale = ce * factor, float(factor)
            else:  # CE + lambda (E - T) / T
                loss_direct, gate_scale = method.lam * (expected - budget) / budget, 1.0
        grad = tape.gradient(loss_direct, self.logits).numpy()
        binary = gate_grads.numpy() * gate_scale  # d loss / d gates
        for i, (a, b) in enumerate(pairs):
            if search.slots[i].candidates[a][1] == SKIP:
                grad[i] = 0.0  # a zero op drawn active: this slot is not updated (set_arch_param_grad)
                continue
            local = np.exp(old[i, [a, b]] - old[i, [a, b]].max())
            local /= local.sum()
            for u, ou in enumerate((a, b)):
                for v in range(2):
                    grad[i, ou] += binary[i, v] * local[v] * ((u == v) - local[u])
        self.arch_opt.apply_gradients([(tf.constant(grad, tf.float32), self.logits)])
        new = self.logits.numpy()
        for i, (a, b) in enumerate(pairs):  # rescale_updated_arch_param: the pair keeps its total mass
            if search.slots[i].candidates[a][1] != SKIP:
                new[i, [a, b]] -= np.log(np.exp(new[i, [a, b]]).sum() / np.exp(old[i, [a, b]]).sum())
        self.logits.assign(new)
        self.last_pairs = pairs
        return ce * gate_scale if method.loss == "mul#log" else float(ce + loss_direct), float(expected)

    # --- reading the distribution --------------------------------------------------------------

    def probs(self) -> np.ndarray:
        return _probs(self.logits, self.mask).numpy()

    def argmax(self) -> np.ndarray:
        return np.argmax(np.where(self.search.mask, self.logits.numpy(), -np.inf), axis=1)


# --- the run -----------------------------------------------------------------------------------

def _state_key(request: searches.Request) -> dict:
    """What must match for a checkpoint to continue: everything but the number of epochs."""
    dataset = str(request.dataset) if str(request.dataset) == "shapes" else str(Path(request.dataset).resolve())
    return {"strategy": request.strategy, "space": request.space, "device": request.profile.name,
            "profile_version": request.profile.version, "budget_ms": request.budget_ms,
            "resolution": request.resolution, "dataset": dataset, "images": request.images,
            "batch_size": request.batch_size, "seed": request.seed, "settings": dict(sorted(request.settings.items()))}


def _read_state(out: Path, key: dict) -> dict | None:
    path = out / STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        if state.get("format") != FORMAT:
            raise ValueError("unknown format")
    except ValueError as exc:
        raise SearchError(f"{path} is not a search checkpoint ({exc}); remove the folder or pick another "
                          "--out") from None
    differs = [k for k in key if state["key"].get(k) != key[k]]
    if differs:
        raise SearchError(f"{out} holds a search with other settings ({', '.join(differs)}: "
                          f"{state['key'][differs[0]]!r}, not {key[differs[0]]!r}); rerun it as it was or pick "
                          "another --out")
    return state


def _save(out: Path, run: _Search, state: dict) -> dict:
    number = int(state["weights"].rpartition("-")[2]) + 1 if state.get("weights") else 1
    prefix = f"weights-{number}"
    run.checkpoint.write(str(out / prefix))
    state = {**state, "weights": prefix}
    write_json(out / STATE, state)
    for old in out.glob("weights-*"):
        if not old.name.startswith(prefix + "."):
            old.unlink()
    return state


def check(request: searches.Request, method: Method, search: DnasSpace) -> None:
    """Refuse a budget no architecture meets, and a log loss on latencies of 1 ms or less."""
    _, fastest = search.fastest()
    if fastest > request.budget_ms:
        raise SearchError(f"no architecture of space {request.space!r} at {request.resolution} px meets "
                          f"{request.budget_ms:g} ms on {request.profile.name}: the fastest is predicted at "
                          f"{fastest:.2f} ms")
    if method.loss in ("fbnet", "mul#log") and (fastest <= 1.0 or request.budget_ms <= 1.0):
        raise SearchError(f"the {method.name} loss takes log(latency in ms), which is not positive at "
                          f"{min(fastest, request.budget_ms):.2f} ms; use a larger --resolution"
                          + (" or --loss add#linear" if method.name == "proxyless" else ""))


def _run(request: searches.Request, base: Method) -> searches.Result:
    method = _method(base, request.settings)
    out = Path(request.out)
    key = _state_key(request)
    state = _read_state(out, key) if out.is_dir() else None
    finished = searches.read_result(out) if state else None
    if finished is not None and state["epochs_done"] >= request.epochs:
        return finished
    source = data.open_source(request.dataset, request.resolution, request.images, 0.2, request.seed)
    search = DnasSpace(spaces.get(request.space), request.profile, request.resolution, len(source.classes))
    check(request, method, search)
    if state is None:
        check_output_folder(out)
    run = _Search(request, method, search, source)
    if state is None:
        out.mkdir(parents=True, exist_ok=True)
        state = {"format": FORMAT, "key": key, "classes": list(source.classes), "epochs_done": 0, "history": [],
                 "seconds": 0.0, "weights": ""}
    else:
        try:
            run.checkpoint.read(str(out / state["weights"])).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SearchError(f"search checkpoint {out} is damaged or half written ({first}); remove it") from None
    warmup = int(round(request.epochs * method.warmup))
    steps = run.weight_images.steps
    for epoch in range(state["epochs_done"], request.epochs):
        started = time.perf_counter()
        tau = TAU0 * math.exp(-TAU_DECAY * epoch)
        arch_batches = iter(())
        weight_losses, arch_losses, seen = [], [], []
        for i, (x, y) in enumerate(run.weight_images.epoch(epoch)):
            seed = tf.constant([request.seed, epoch * 100003 + i], tf.int64)
            rate = 0.5 * WEIGHT_LR * request.batch_size / 64 * (
                1 + math.cos(math.pi * (epoch * steps + i) / (request.epochs * steps)))
            weight_losses.append(run.weight_step(x, y, tau, seed, rate))
            if epoch >= warmup and (i + 1) % method.arch_every == 0:
                batch = next(arch_batches, None)
                if batch is None:
                    arch_batches = iter(run.arch_images.epoch(epoch * 1000 + i))
                    batch = next(arch_batches)
                loss, latency = run.arch_step(*batch, tau, seed + [0, 7])
                arch_losses.append(loss)
                seen.append(latency)
            if not math.isfinite(weight_losses[-1]) or (arch_losses and not math.isfinite(arch_losses[-1])):
                raise SearchError(f"{method.name} search diverged in epoch {epoch + 1}, step {i + 1}; the "
                                  "checkpoint keeps the last completed epoch")
        picks = run.argmax()
        record = searches.EpochReport(
            method.name, epoch + 1, request.epochs, round(float(np.mean(arch_losses or weight_losses)), 4),
            round(search.expected_ms(run.probs()), 4), round(search.latency_ms(picks), 4),
            search.spec(picks).encode(), round(time.perf_counter() - started, 2),
            {"weight_loss": round(float(np.mean(weight_losses)), 4), "temperature": round(tau, 4),
             **({"lambda": round(float(run.lam.numpy()), 6)} if method.name == "lightnas" else {}),
             **({"sampled_ms": round(float(np.mean(seen)), 4)} if seen else {}),
             "phase": "warm-up" if epoch < warmup else "search", "ops": search.describe(picks)})
        state = _save(out, run, {**state, "epochs_done": epoch + 1, "history": state["history"] + [record.__dict__],
                                 "seconds": round(state["seconds"] + record.seconds, 2)})
        if request.progress:
            request.progress(record)
    return _finish(request, method, search, run, source, state)


def _finish(request, method: Method, search: DnasSpace, run: _Search, source: data.Source, state: dict
            ) -> searches.Result:
    """The argmax architecture (moved within the budget if over it), extracted, recalibrated, saved."""
    picks, notes = run.argmax(), list(search.notes)
    argmax_ms = search.latency_ms(picks)
    if argmax_ms > request.budget_ms:
        picks = search.within_budget(run.probs(), picks, request.budget_ms)
        notes.append(f"the most likely architecture ({argmax_ms:.2f} ms) is over the budget; slots were moved to "
                     f"cheaper ops, least probability lost per ms saved first, to {search.latency_ms(picks):.2f} ms")
    spec, model = run.net.extract(picks)
    recalibrate_net(model, source, request.resolution)
    weights = Path(request.out) / searches.WEIGHTS
    searches.save_weights(model, weights)
    predicted = request.profile.predict(spec, len(source.classes)).total_ms
    result = searches.Result(
        method.name, request.space, request.profile.name, request.profile.version, request.budget_ms, spec,
        tuple(search.choice(picks)), predicted, tuple(source.classes),
        {"dataset": state["key"]["dataset"], "resolution": request.resolution, "images": request.images,
         "val_fraction": 0.2, "seed": request.seed},
        tuple(state["history"]), weights, state["seconds"], tuple(notes), unrepaired_ms=round(argmax_ms, 4))
    searches.write_result(request.out, result)
    return result


def recalibrate_net(model, source: data.Source, resolution: int) -> None:
    """Batch-norm statistics of the found network from training images (``supernet.evaluate``)."""
    from edgetailor.tasks.classification.train import recalibrate_batch_norm

    calibration, _ = data.arrays(source, "train", resolution, limit=CALIBRATION_IMAGES)
    batch = min(200, len(calibration))
    recalibrate_batch_norm(model, calibration, batches=-(-len(calibration) // batch), batch_size=batch)

