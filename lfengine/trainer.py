"""The training loop: epochs of shuffled batches, validation, early stopping, checkpoints.

No hidden magic: each epoch draws a new batch order from the seeded generator, each batch is one
optimizer step, validation runs on schedule, the best weights are written to the model directory
whenever the early-stopping metric improves, and a checkpoint after every epoch lets ``--resume``
continue exactly where a killed run stopped (optimizer, scheduler and RNG state included). A run
ended by a stop signal mid-epoch checkpoints its position in the epoch too, so that resuming it
replays the rest of that epoch's batches and ends as an uninterrupted run would.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfengine import store
from lfengine.accelerate import Precision
from lfengine.allocator import release_freed_memory
from lfengine.builder.base import TaskModel
from lfengine.builder.config import ModelConfig
from lfengine.data.batching import batch_indices, collate
from lfengine.data.codec import Codec
from lfengine.data.encoding import Encoded
from lfengine.data.rows import rare_rows
from lfengine.distributed import Coordinator
from lfengine.errors import OptionError
from lfengine.metrics import single_predicted_label
from lfengine.predictor import Predictor, headline

log = logging.getLogger(__name__)
Progress = Callable[[dict[str, Any]], None]


@dataclass
class Schedule:
    """When to validate and report, and what decides the best model."""

    es_metric: str  # loss | accuracy | f1 (span F1 for chunk labels, macro F1 otherwise) | mse
    validate_every_epochs: int = 1
    validate_every_batches: int | None = None
    validate_every_instances: int | None = None
    report_every_batches: int | None = None
    report_every_instances: int | None = None


@dataclass
class TrainState:
    """Everything that changes during training; saved in the checkpoint for resume."""

    epoch: int = 0  # completed epochs
    batches: int = 0  # global batch counter
    instances: int = 0  # global instance counter
    best_score: float = -math.inf
    best_loss: float = math.inf
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # training time (wall) before the current run, for resumed runs
    cpu_seconds: float = 0.0


@dataclass
class EpochPosition:
    """Where in an epoch a stop signal ended training: enough to replay the rest exactly."""

    epoch_rng: dict[str, Any]  # the batch generator's state before this epoch's order was drawn
    batches_done: int
    loss_sum: float
    loss_n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch_rng": self.epoch_rng,
            "batches_done": self.batches_done,
            "loss_sum": self.loss_sum,
            "loss_n": self.loss_n,
        }


@dataclass
class StopSignals:
    """Ways to end training early; each keeps the best model."""

    cancel: threading.Event | None = None
    stop_file: Path | None = None

    def reason(self) -> str | None:
        if self.cancel is not None and self.cancel.is_set():
            return "cancelled"
        if self.stop_file is not None and self.stop_file.exists():
            try:
                self.stop_file.unlink()
            except OSError:
                pass
            return "stop-file"
        return None


class Trainer:
    def __init__(
        self,
        model: TaskModel,
        codec: Codec,
        config: ModelConfig,
        schedule: Schedule,
        model_dir: Path,
        save_model: Callable[[TrainState], None],
        *,
        seed: int,
        device: torch.device,
        signals: StopSignals,
        on_progress: Progress | None = None,
        coordinator: Coordinator | None = None,
        precision: Precision | None = None,
    ) -> None:
        self.model = model.to(device)
        self.codec = codec
        self.config = config
        self.schedule = schedule
        self.model_dir = model_dir
        self.save_model = save_model
        self.seed = seed
        self.device = device
        self.signals = signals
        self.on_progress = on_progress
        self.optimizer = model.make_optimizer()
        self.state = TrainState()
        self.rng = np.random.default_rng(seed)
        self.position: EpochPosition | None = None  # set by resume() after a mid-epoch stop
        # With several ranks (--workers, torchrun): rank 0 alone validates and writes.
        self.coord = coordinator or Coordinator(device=device)
        self.loss_of: Callable[[Any], torch.Tensor] = self.model.loss
        self.precision = precision or Precision("fp32")
        self.rare: dict[int, torch.Tensor] = {}  # emb_id's rare-row mask per token column (fit)
        self.rare_lists: dict[int, torch.Tensor] = {}
        self.clock = (time.monotonic(), time.process_time())  # when this run started

    def _elapsed(self) -> tuple[float, float]:
        """Training time so far, wall and CPU seconds, counting the runs before a resume."""
        return (
            self.state.seconds + time.monotonic() - self.clock[0],
            self.state.cpu_seconds + time.process_time() - self.clock[1],
        )

    # --- resume ---------------------------------------------------------------------------
    def checkpoint_payload(self, position: EpochPosition | None = None) -> dict[str, Any]:
        s = self.state
        return {
            "position": position.to_dict() if position is not None else None,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": store.capture_rng_state(),
            "torch_rngs": self.coord.torch_rng_states(),  # every rank's (a collective)
            "grad_scaler": self.precision.state_dict(),  # fp16 on CUDA
            "batch_rng": _bitgen_state(self.rng),
            "state": {
                "epoch": s.epoch,
                "batches": s.batches,
                "instances": s.instances,
                "best_score": s.best_score if math.isfinite(s.best_score) else None,
                "best_loss": s.best_loss if math.isfinite(s.best_loss) else None,
                "best_epoch": s.best_epoch,
                "best_metrics": s.best_metrics,
                "bad_epochs": s.bad_epochs,
                "history": s.history,
                "seconds": self._elapsed()[0],
                "cpu_seconds": self._elapsed()[1],
            },
        }

    def resume(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        store.restore_rng_state(payload["rng"])
        self.coord.restore_torch_rng(payload.get("torch_rngs"))
        self.precision.load_state_dict(payload.get("grad_scaler"))
        self.rng.bit_generator.state = _restore_bitgen(payload["batch_rng"])
        position = payload.get("position")
        self.position = None
        if position is not None:  # stopped inside an epoch: redraw that epoch's order, skip what ran
            self.rng.bit_generator.state = _restore_bitgen(position["epoch_rng"])
            self.position = EpochPosition(
                position["epoch_rng"], position["batches_done"], position["loss_sum"], position["loss_n"]
            )
        s = payload["state"]
        self.state = TrainState(
            epoch=s["epoch"],
            batches=s["batches"],
            instances=s["instances"],
            best_score=-math.inf if s["best_score"] is None else s["best_score"],
            best_loss=math.inf if s["best_loss"] is None else s["best_loss"],
            best_epoch=s["best_epoch"],
            best_metrics=s["best_metrics"],
            bad_epochs=s["bad_epochs"],
            history=s["history"],
            seconds=s.get("seconds", 0.0),
            cpu_seconds=s.get("cpu_seconds", 0.0),
        )
        log.info(
            "resuming after epoch %d%s (best so far: epoch %d)",
            self.state.epoch,
            f" and {self.position.batches_done} batches" if self.position else "",
            self.state.best_epoch,
        )

    # --- the loop -------------------------------------------------------------------------
    def fit(self, train: Encoded, val: Encoded | None) -> str:
        """Train until max epochs, early stopping or a stop signal; returns why it stopped."""
        cfg, s = self.config, self.state
        self.clock = (time.monotonic(), time.process_time())
        rare = rare_rows(self.codec, train) if cfg.unk_replace > 0 else {}
        self.rare = {
            j: torch.from_numpy(rare[self.codec.nominal[j].emb_id]).to(self.device)
            for j in self.codec.token_columns
            if self.codec.nominal[j].emb_id in rare
        }
        self.rare_lists = {
            k: torch.from_numpy(rare[self.codec.lists[k].emb_id]).to(self.device)
            for k in self.codec.token_lists
            if self.codec.lists[k].emb_id in rare
        }
        lengths = train.lengths()
        bucket = train.seq_offsets is not None
        started = time.monotonic()
        epochs_left = cfg.max_epochs - s.epoch
        total_batches = math.ceil(len(train) / cfg.batch_size) * max(epochs_left, 0)
        done_batches = 0
        self.loss_of = self.coord.loss_function(self.model)
        main = self.coord.main
        while s.epoch < cfg.max_epochs:
            epoch = s.epoch + 1
            self.model.train()
            epoch_rng = _bitgen_state(self.rng)
            batches = batch_indices(lengths, cfg.batch_size, rng=self.rng, bucket=bucket)
            skip, loss_sum, loss_n = 0, 0.0, 0
            if self.position is not None:
                position, self.position = self.position, None
                skip, loss_sum, loss_n = position.batches_done, position.loss_sum, position.loss_n
                total_batches -= skip
            for number, items in enumerate(batches, 1):
                if number <= skip:
                    continue
                reason = self.coord.agree(self.signals.reason() if main else None, self.optimizer)
                if reason:
                    return self._stop(reason, val, EpochPosition(epoch_rng, number - 1, loss_sum, loss_n))
                mine = self.coord.shard(items)
                loss = self._step(collate(train, mine).to(self.device), len(mine))
                loss_sum += loss * len(items)
                loss_n += len(items)
                s.batches += 1
                s.instances += len(items)
                done_batches += 1
                if self._due(self.schedule.report_every_batches, s.batches, 1) or self._due(
                    self.schedule.report_every_instances, s.instances, len(items)
                ):
                    log.info(
                        "epoch %d batch %d/%d: loss %.4f", epoch, number, len(batches), loss_sum / loss_n
                    )
                self._progress(
                    epoch, number, len(batches), loss_sum / loss_n, None, started, done_batches, total_batches
                )
                if (
                    main
                    and val is not None
                    and (
                        self._due(self.schedule.validate_every_batches, s.batches, 1)
                        or self._due(self.schedule.validate_every_instances, s.instances, len(items))
                    )
                ):
                    self._validate(val, epoch, loss_sum / loss_n)
                    self.model.train()
            s.epoch = epoch
            train_loss = loss_sum / max(loss_n, 1)
            if not main:
                pass  # rank 0 validates and saves
            elif val is None:
                self._record(epoch, train_loss, {})
                self.save_model(s)
            elif epoch % self.schedule.validate_every_epochs == 0 or epoch == cfg.max_epochs:
                metrics = self._validate(val, epoch, train_loss)
                self._progress(
                    epoch,
                    len(batches),
                    len(batches),
                    train_loss,
                    metrics,
                    started,
                    done_batches,
                    total_batches,
                )
            elif s.best_epoch == 0:
                # Not validated yet: keep what we have, so that a model (and with it what --resume
                # reads besides the checkpoint) exists from the first epoch on.
                self.save_model(s)
            # Hand the pages freed this epoch back: without it the allocator's heap fragments
            # and the peak resident size grows epoch after epoch (bench/bench_memory.py).
            release_freed_memory()
            payload = self.checkpoint_payload()
            if main:
                store.save_checkpoint(self.model_dir, payload)
            patience_spent = main and val is not None and s.bad_epochs > cfg.es_patience
            if self.coord.agree("early-stopping" if patience_spent else None, self.optimizer):
                log.info(
                    "early stopping: no improvement for %d validations; best epoch %d",
                    s.bad_epochs,
                    s.best_epoch,
                )
                return "early-stopping"
        return "max-epochs"

    def _step(self, batch: Any, items: int) -> float:
        self._blank_previous_labels(batch)
        self._unknown_words(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            loss = self.loss_of(batch)
        value = self.coord.mean_loss(loss, items)  # over all ranks' items: all agree to go on
        if not math.isfinite(value):
            raise OptionError(
                f"the training loss became {value} at batch {self.state.batches + 1}: "
                f"training diverged with learning_rate {self.config.learning_rate}; try a lower one"
            )
        self.precision.backward(loss)
        if self.config.grad_clip > 0:
            self.precision.unscale(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.precision.step(self.optimizer)
        return value

    def _blank_previous_labels(self, batch: Any) -> None:
        """Hide previous-label columns (gate.LF.target) in a random share of the training items.

        GATE fills them with gold labels for training but leaves them empty when it applies a
        model (gate-plugin.md §8, item 8); a model that always saw them would lean on an input
        that never comes. Training without them part of the time teaches it to do without
        (defect C13); the share is the ``previous_label_dropout`` heuristic.
        """
        columns, rate = self.codec.previous_label_columns, self.config.previous_label_dropout
        if not columns or rate <= 0:
            return
        hide = torch.rand(batch.nominal.shape[:-1], device=batch.nominal.device) < rate
        part = batch.nominal[..., columns]
        batch.nominal[..., columns] = part.masked_fill(hide.unsqueeze(-1), 0)

    def _unknown_words(self, batch: Any) -> None:
        """Feed some training tokens as OOV, so that the OOV row learns what an unseen word means:
        a rare (singleton) token with chance ``unk_replace`` (Lample et al. 2016), any token with
        chance ``word_dropout``. Only token-string columns; PAD (missing) stays PAD."""
        cfg, codec = self.config, self.codec
        if cfg.unk_replace <= 0 and cfg.word_dropout <= 0:
            return

        def replace(ids: torch.Tensor, rare: torch.Tensor | None, unknown: int) -> torch.Tensor:
            chance = torch.full(ids.shape, cfg.word_dropout, device=ids.device)
            if rare is not None:
                chance = torch.where(rare[ids], max(cfg.unk_replace, cfg.word_dropout), chance)
            hit = (torch.rand(ids.shape, device=ids.device) < chance) & (ids > unknown)
            return ids.masked_fill(hit, unknown)

        for j in codec.token_columns:
            unknown = codec.vocabs[codec.nominal[j].emb_id].unknown_index
            batch.nominal[..., j] = replace(batch.nominal[..., j], self.rare.get(j), unknown)
        for k in codec.token_lists:
            unknown = codec.vocabs[codec.lists[k].emb_id].unknown_index
            batch.lists[k] = replace(batch.lists[k], self.rare_lists.get(k), unknown)

    @staticmethod
    def _due(every: int | None, counter: int, step: int) -> bool:
        """True when ``counter`` passed a multiple of ``every`` in its last step of ``step``."""
        return bool(every) and (counter // every) > ((counter - step) // every)

    def _validate(self, val: Encoded, epoch: int, train_loss: float) -> dict[str, float]:
        report = Predictor(self.model, self.codec, self.device).evaluate(val)
        self.model.train()
        metrics = headline(report)
        s, cfg = self.state, self.config
        score = self._score(metrics)
        improved = score > s.best_score or (score == s.best_score and metrics["loss"] < s.best_loss)
        # Patience restarts only on a gain of at least es_min_delta (the best model is kept
        # anyway), or, while the score has shown no progress at all (span F1 stays 0 for the
        # first epochs of a small tagging set), on a lower loss.
        tie = (
            score == s.best_score
            and metrics["loss"] < s.best_loss
            and (s.best_score <= 0 or not cfg.es_min_delta)
        )
        if score > s.best_score + cfg.es_min_delta or tie or not math.isfinite(s.best_score):
            s.bad_epochs = 0
        else:
            s.bad_epochs += 1
            # Reduce on plateau, once half the patience is used up: small validation sets are
            # noisy, and halving on every dip starves a small-data run.
            if cfg.lr_decay < 1 and s.bad_epochs >= max(1, cfg.es_patience // 2):
                for group in self.optimizer.param_groups:
                    group["lr"] *= cfg.lr_decay
        if improved:
            s.best_score, s.best_loss, s.best_epoch, s.best_metrics = score, metrics["loss"], epoch, metrics
        self._record(epoch, train_loss, metrics, improved)
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "loss")
        wall, cpu = self._elapsed()
        log.info(
            "epoch %d: train loss %.4f | validation loss %.4f %s%s",
            epoch,
            train_loss,
            metrics["loss"],
            shown,
            f" | best so far after {wall:.1f} s, {cpu:.1f} CPU s, saved" if improved else "",
        )
        only = single_predicted_label(report)
        if only is not None:
            log.warning("epoch %d: the model predicts %r for everything in the validation set", epoch, only)
        if improved:
            self.save_model(s)
        return metrics

    def _score(self, metrics: dict[str, float]) -> float:
        metric = self.schedule.es_metric
        if metric == "loss":
            return -metrics["loss"]
        if metric == "mse":
            return -metrics["mse"]
        if metric == "f1":
            return metrics.get("span_f1", metrics.get("macro_f1", 0.0))
        return metrics["accuracy"]

    def _record(self, epoch: int, train_loss: float, metrics: dict, improved: bool = False) -> None:
        entry = {
            "epoch": epoch,
            "batches": self.state.batches,
            "train_loss": train_loss,
            "validation": metrics,
            "best": improved,
            "time": time.time(),
            "seconds": round(self._elapsed()[0], 3),  # training time to this point (wall, CPU)
            "cpu_seconds": round(self._elapsed()[1], 3),
            "learning_rate": self.optimizer.param_groups[0]["lr"],
        }
        self.state.history.append(entry)
        store.append_metrics(self.model_dir, entry)

    def _stop(self, reason: str, val: Encoded | None, position: EpochPosition) -> str:
        payload = self.checkpoint_payload(position)
        if not self.coord.main:
            return reason
        log.info("training stopped: %s; keeping the best model (epoch %d)", reason, self.state.best_epoch)
        if val is None or self.state.best_epoch == 0:
            self.save_model(self.state)  # nothing validated yet: keep what we have
            if val is not None:
                log.warning("stopped before the first validation: the saved model was never validated")
        store.save_checkpoint(self.model_dir, payload)
        return reason

    def _progress(
        self,
        epoch: int,
        batch: int,
        batches: int,
        loss: float,
        metrics: dict | None,
        started: float,
        done: int,
        total: int,
    ) -> None:
        if self.on_progress is None:
            return
        elapsed = time.monotonic() - started
        eta = elapsed / done * (total - done) if done and total > done else 0.0
        self.on_progress(
            {
                "epoch": epoch,
                "batch": batch,
                "batches": batches,
                "instances": self.state.instances,
                "loss": loss,
                "metrics": metrics or {},
                "elapsed": elapsed,
                "eta": eta,
            }
        )


def _bitgen_state(rng: np.random.Generator) -> dict[str, Any]:
    """numpy's PCG64 state as plain ints (stored as strings: they exceed 64 bits)."""
    st = rng.bit_generator.state
    return {
        "bit_generator": st["bit_generator"],
        "state": str(st["state"]["state"]),
        "inc": str(st["state"]["inc"]),
        "has_uint32": st["has_uint32"],
        "uinteger": st["uinteger"],
    }


def _restore_bitgen(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "bit_generator": d["bit_generator"],
        "state": {"state": int(d["state"]), "inc": int(d["inc"])},
        "has_uint32": d["has_uint32"],
        "uinteger": d["uinteger"],
    }
