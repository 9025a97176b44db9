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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lfengine.builder.base import TaskModel
from lfengine.builder.config import ModelConfig
from lfengine.builder.sparse_weights import stop_check
from lfengine.console.progress import plural
from lfengine.data.batching import batch_indices, collate
from lfengine.data.codec import Codec
from lfengine.data.encoding import Encoded
from lfengine.errors import OptionError
from lfengine.evaluation.metrics import single_predicted_label
from lfengine.predictor import Predictor, headline
from lfengine.runtime.accelerate import Precision
from lfengine.runtime.allocator import release_freed_memory
from lfengine.storage.train_state import (
    EpochPosition,
    TrainState,
    bitgen_state,
    capture_rng_state,
    restore_bitgen,
    restore_rng_state,
)
from lfengine.training.distributed import Coordinator
from lfengine.training.input_noise import InputNoise
from lfengine.training.model_writer import ModelWriter
from lfengine.training.schedule import Schedule, StopSignals

# The logger keeps its name from before the move into lfengine/training/: clients see it in log
# notifications (protocol.md) and may filter on it.
log = logging.getLogger("lfengine.trainer")
Progress = Callable[[dict[str, Any]], None]


@dataclass
class _Run:
    """One call of fit: the batch order's inputs and the progress counters (for the ETA)."""

    lengths: np.ndarray
    bucket: bool  # length-bucketed batches (sequences)
    total_batches: int
    started: float = field(default_factory=time.monotonic)
    done_batches: int = 0


@dataclass
class _EpochLoss:
    """The running training loss of one epoch."""

    total: float = 0.0
    items: int = 0

    @property
    def mean(self) -> float:
        return self.total / self.items


class Trainer:
    def __init__(
        self,
        model: TaskModel,
        codec: Codec,
        config: ModelConfig,
        schedule: Schedule,
        writer: ModelWriter,
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
        self.writer = writer
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
        self.noise: InputNoise | None = None  # set by fit (it needs the training data)
        self.clock = (time.monotonic(), time.process_time())  # when this run started

    def _elapsed(self) -> tuple[float, float]:
        """Training time so far, wall and CPU seconds, counting the runs before a resume."""
        s, (wall, cpu) = self.state, self.clock
        return s.seconds + time.monotonic() - wall, s.cpu_seconds + time.process_time() - cpu

    def _save_model(self) -> None:
        self.writer.save_model(self.model, self.state)

    # --- resume ---------------------------------------------------------------------------
    def checkpoint_payload(self, position: EpochPosition | None = None) -> dict[str, Any]:
        return {
            "position": position.to_dict() if position is not None else None,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": capture_rng_state(),
            "torch_rngs": self.coord.torch_rng_states(),  # every rank's (a collective)
            "grad_scaler": self.precision.state_dict(),  # fp16 on CUDA
            "batch_rng": bitgen_state(self.rng),
            "state": self.state.to_dict(self._elapsed()[0], self._elapsed()[1]),
        }

    def resume(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        restore_rng_state(payload["rng"])
        self.coord.restore_torch_rng(payload.get("torch_rngs"))
        self.precision.load_state_dict(payload.get("grad_scaler"))
        self.rng.bit_generator.state = restore_bitgen(payload["batch_rng"])
        position = payload.get("position")
        self.position = None
        if position is not None:  # stopped inside an epoch: redraw that epoch's order, skip what ran
            self.rng.bit_generator.state = restore_bitgen(position["epoch_rng"])
            self.position = EpochPosition.from_dict(position)
        self.state = TrainState.from_dict(payload["state"])
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
        with stop_check(self.signals.reason if self.coord.main else None):  # a stop ends a long fit
            self.model.fit_before_training(train)
        self.noise = InputNoise(self.codec, cfg, train, self.device)
        epochs_left = cfg.max_epochs - s.epoch
        run = _Run(
            lengths=train.lengths(),
            bucket=train.seq_offsets is not None,
            total_batches=math.ceil(len(train) / cfg.batch_size) * max(epochs_left, 0),
        )
        self.loss_of = self.coord.loss_function(self.model)
        while s.epoch < cfg.max_epochs:
            stopped = self._epoch(train, val, run)
            if stopped is not None:
                return stopped
        return "max-epochs"

    def _epoch(self, train: Encoded, val: Encoded | None, run: _Run) -> str | None:
        """One epoch (or the rest of an interrupted one); why training stops, or None."""
        cfg, s = self.config, self.state
        epoch = s.epoch + 1
        self.model.train()
        epoch_rng = bitgen_state(self.rng)
        batches = batch_indices(run.lengths, cfg.batch_size, rng=self.rng, bucket=run.bucket)
        skip, loss = 0, _EpochLoss()
        if self.position is not None:
            position, self.position = self.position, None
            skip, loss = position.batches_done, _EpochLoss(position.loss_sum, position.loss_n)
            run.total_batches -= skip
        for number, items in enumerate(batches, 1):
            if number <= skip:
                continue
            reason = self.coord.agree(self.signals.reason() if self.coord.main else None, self.optimizer)
            if reason:
                return self._stop(reason, val, EpochPosition(epoch_rng, number - 1, loss.total, loss.items))
            self._batch(train, items, loss, run)
            self._after_batch(val, epoch, number, len(batches), loss, run, len(items))
        s.epoch = epoch
        self._end_epoch(val, epoch, len(batches), loss, run)
        return self._early_stopping(val)

    def _batch(self, train: Encoded, items: np.ndarray, loss: _EpochLoss, run: _Run) -> None:
        """One optimizer step on this rank's share of a global batch."""
        mine = self.coord.shard(items)
        value = self._step(collate(train, mine).to(self.device), len(mine))
        loss.total += value * len(items)
        loss.items += len(items)
        self.state.batches += 1
        self.state.instances += len(items)
        run.done_batches += 1

    def _after_batch(
        self,
        val: Encoded | None,
        epoch: int,
        number: int,
        batches: int,
        loss: _EpochLoss,
        run: _Run,
        size: int,
    ) -> None:
        """Report, send progress and validate when the schedule says so."""
        s, schedule = self.state, self.schedule
        if schedule.report_due(s.batches, s.instances, size):
            log.info("epoch %d batch %d/%d: loss %.4f", epoch, number, batches, loss.mean)
        self._progress(epoch, number, batches, loss.mean, None, run)
        if self.coord.main and val is not None and schedule.validation_due(s.batches, s.instances, size):
            self._validate(val, epoch, loss.mean)
            self.model.train()

    def _end_epoch(self, val: Encoded | None, epoch: int, batches: int, loss: _EpochLoss, run: _Run) -> None:
        """Validate (or save) on schedule, hand freed memory back, write the checkpoint."""
        train_loss = loss.total / max(loss.items, 1)
        if not self.coord.main:
            pass  # rank 0 validates and saves
        elif val is None:
            self._record(epoch, train_loss, {})
            self._save_model()
        elif epoch % self.schedule.validate_every_epochs == 0 or epoch == self.config.max_epochs:
            metrics = self._validate(val, epoch, train_loss)
            self._progress(epoch, batches, batches, train_loss, metrics, run)
        elif self.state.best_epoch == 0:
            # Not validated yet: keep what we have, so that a model (and with it what --resume
            # reads besides the checkpoint) exists from the first epoch on.
            self._save_model()
        # Hand the pages freed this epoch back: without it the allocator's heap fragments
        # and the peak resident size grows epoch after epoch (bench/bench_memory.py).
        release_freed_memory()
        self.writer.save_checkpoint(self.checkpoint_payload())

    def _early_stopping(self, val: Encoded | None) -> str | None:
        """ "early-stopping" once patience is spent (rank 0 decides, every rank agrees)."""
        s = self.state
        patience_spent = self.coord.main and val is not None and s.bad_epochs > self.config.es_patience
        if self.coord.agree("early-stopping" if patience_spent else None, self.optimizer):
            log.info("early stopping: %s", self._stopping_reason())
            return "early-stopping"
        return None

    def _stopping_reason(self) -> str:
        """Why patience ran out. With es_min_delta, an epoch can score best (and be saved) by a
        gain too small to reset patience: say so, or "no improvement" would contradict "best"."""
        s, delta = self.state, self.config.es_min_delta
        if not delta:
            return f"no improvement for {plural(s.bad_epochs, 'validation')}; best epoch {s.best_epoch}"
        reason = (
            f"no gain of at least es_min_delta {delta:g} for {plural(s.bad_epochs, 'validation')}; "
            f"best epoch {s.best_epoch}"
        )
        validated = [entry for entry in s.history if entry["validation"]]
        if any(entry["best"] for entry in validated[len(validated) - s.bad_epochs :]):
            reason += " (it scored best by less than es_min_delta, so patience still ran out)"
        return reason

    def _step(self, batch: Any, items: int) -> float:
        self.noise.apply(batch)
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

    def _validate(self, val: Encoded, epoch: int, train_loss: float) -> dict[str, float]:
        with torch.no_grad():  # what is chosen, not trained, on the validation split first
            self.model.eval().choose_on_validation(val)
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
            self._save_model()
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
        self.writer.append_metrics(entry)

    def _stop(self, reason: str, val: Encoded | None, position: EpochPosition) -> str:
        payload = self.checkpoint_payload(position)
        if not self.coord.main:
            return reason
        if self.state.best_epoch:
            log.info("training stopped: %s; keeping the best model (epoch %d)", reason, self.state.best_epoch)
        else:
            log.info("training stopped: %s; keeping the model as it is (nothing validated yet)", reason)
        if val is None or self.state.best_epoch == 0:
            self._save_model()  # nothing validated yet: keep what we have
            if val is not None:
                log.warning("stopped before the first validation: the saved model was never validated")
        self.writer.save_checkpoint(payload)
        return reason

    def _progress(
        self,
        epoch: int,
        batch: int,
        batches: int,
        loss: float,
        metrics: dict | None,
        run: _Run,
    ) -> None:
        if self.on_progress is None:
            return
        elapsed = time.monotonic() - run.started
        done, total = run.done_batches, run.total_batches
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
