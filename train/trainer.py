"""The one training loop, for every tokenizer family, on one process or many (Accelerate).

Per optimizer step: reconstruction losses from the modality's recipe + the quantizer's auxiliary
loss (+ an adversarial term once the GAN phase starts), an Accelerate backward with gradient
accumulation, clipping and mixed precision; then a discriminator step; EMA of weights; codebook
health; logs; atomic checkpoints that resume exactly.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import ProjectConfiguration, set_seed
from safetensors.torch import load_file
from tqdm.auto import tqdm

from mmtok import distributed
from mmtok.config import to_dict
from mmtok.cpu_threads import limit_threads_per_process
from mmtok.health import CodebookMonitor, describe_use
from mmtok.models.registry import build_tokenizer, family_of, recipe_class
from mmtok.train.checkpoint import EMA_FILE, latest_checkpoint, load_checkpoint, save_checkpoint
from mmtok.train.config import OptimizerConfig, RunConfig
from mmtok.train.data import build_loader
from mmtok.train.ema import WeightEMA
from mmtok.train.losses import LeCamRegularizer, adaptive_gan_weight, discriminator_loss

logger = logging.getLogger("mmtok.train")
MAX_CODEBOOKS_LOGGED = 4  # code-use lines per health window on the console; trackers get every codebook


def make_accelerator(config: RunConfig) -> Accelerator:
    # Without a GPU, accelerate only forms a real multi-process (gloo) group when built with
    # cpu=True; otherwise `accelerate launch --multi_gpu` starts processes that each think they are alone.
    cpu = not torch.cuda.is_available()
    output_dir = Path(config.output_dir)
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=config.train.mixed_precision,
        gradient_accumulation_steps=config.train.grad_accum,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        # Codebook buffers are kept identical by explicit reductions; broadcasting rank 0's copy
        # every forward would only hide a bug and cost bandwidth.
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
    )
    limit_threads_per_process()
    return accelerator


def make_optimizer(params, cfg: OptimizerConfig, max_steps: int, time_spent: Callable[[], float] = lambda: 0.0):
    """The configured optimizer (AdamW by default) with warmup and a cosine (or constant) schedule;
    `time_spent()` is the fraction of a wall-clock budget used so far, and the schedule follows it
    when it runs ahead of the steps."""
    optimizer = cfg.build(params)

    def lr_factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        by_steps = (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps)
        progress = min(1.0, max(by_steps, time_spent()))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


@contextmanager
def frozen(module: torch.nn.Module):
    """Gradients flow through `module` to its inputs but do not accumulate on its parameters."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class Trainer:
    def __init__(self, config: RunConfig, *, resume: bool = False):
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.accelerator = make_accelerator(config)
        set_seed(config.train.seed)  # same seed everywhere: every process starts from the same weights
        tokenizer = build_tokenizer(config.model)
        if not (resume and latest_checkpoint(self.output_dir)):
            tokenizer.load_initial_weights()
        recipe = recipe_class(family_of(config.model))
        self.recipe = recipe(config.data, config.loss, tokenizer.config, tokenizer.input_spec())
        with self.accelerator.main_process_first():
            self.dataset = self.recipe.build_dataset()

        train, loss = config.train, config.loss
        self.train_seconds, self._started = 0.0, None  # wall-clock time spent in fit(), over resumes
        opt_g, self.sched_g = make_optimizer(tokenizer.parameters(), train.generator, train.max_steps, self.time_spent)
        self.tokenizer, self.opt_g = self.accelerator.prepare(tokenizer, opt_g)
        self.disc = self.opt_d = self.sched_d = self.lecam = None
        if loss.uses_gan:
            disc = self.recipe.build_discriminator()
            if disc is None:
                raise ValueError(f"the {self.recipe.modality} recipe has no discriminator; set loss.gan_start_step=-1")
            opt_d, self.sched_d = make_optimizer(
                disc.parameters(), train.discriminator, train.max_steps, self.time_spent
            )
            self.disc, self.opt_d = self.accelerator.prepare(disc, opt_d)
            if loss.lecam_weight > 0:
                self.lecam = LeCamRegularizer().to(self.accelerator.device)
        self.ema = (
            WeightEMA(self.unwrapped, train.ema_decay).to(self.accelerator.device) if train.ema_decay > 0 else None
        )
        # Schedulers are registered, not prepared: a prepared scheduler steps once per process.
        # The EMA is saved as safetensors by save_checkpoint instead.
        for extra in (self.sched_g, self.sched_d, self.lecam):
            if extra is not None:
                self.accelerator.register_for_checkpointing(extra)

        q = self.unwrapped.quantizer
        self.monitor = CodebookMonitor(q.codebook_sizes, q.num_codebooks)
        self.step, self.nan_skips, self.failed_sources = 0, 0, set()
        self.last_health: list[dict] = []
        if resume:
            self._resume()

    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.tokenizer)

    @property
    def inference_model(self):
        """The weights to evaluate and export: the EMA copy when one is kept, else the raw model."""
        return self.ema.model if self.ema is not None else self.unwrapped

    # -- the loop -------------------------------------------------------------------------------
    def fit(self) -> dict:
        acc, train = self.accelerator, self.config.train
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(self.config), sort_keys=False))
        acc.init_trackers("mmtok", config=_flat_hparams(to_dict(self.config)))
        # What torch.distributed reports (end_training tears the group down, so keep it for callers).
        self.world_size_seen = distributed.world_size()
        per_step = train.batch_size * train.grad_accum
        loader = build_loader(
            self.dataset,
            batch_size=train.batch_size,
            num_workers=train.num_workers,
            seed=train.seed,
            rank=acc.process_index,
            world_size=acc.num_processes,
            position=self.step * per_step,
        )
        batches = iter(loader)
        progress = tqdm(
            total=train.max_steps, initial=self.step, disable=not acc.is_main_process, desc="train", dynamic_ncols=True
        )
        last = {}
        self._started = time.perf_counter()
        while self.step < train.max_steps and not self._out_of_time():
            started = time.perf_counter()
            for _ in range(train.grad_accum):
                x, failed = next(batches)
                self.failed_sources.update(failed)
                last = self._micro_step(x.to(acc.device))
            self.step += 1
            if self.ema is not None:
                self.ema.update(self.unwrapped)
            last["items_per_s"] = per_step * acc.num_processes / (time.perf_counter() - started)
            self._after_step(last, progress)
        progress.close()
        self.train_seconds, self._started = self.seconds_spent(), None
        if not latest_checkpoint(self.output_dir) or latest_checkpoint(self.output_dir).name != f"step_{self.step:08d}":
            self.save()
        acc.end_training()
        return last

    def _micro_step(self, x: torch.Tensor) -> dict:
        acc, loss_cfg = self.accelerator, self.config.loss
        gan_active = self.disc is not None and self.step >= loss_cfg.gan_start_step
        models = [self.tokenizer] + ([self.disc] if self.disc is not None else [])
        with acc.accumulate(*models):
            with acc.autocast():
                recon, qout = self.tokenizer(x)
                parts = self.recipe.reconstruction_losses(x, recon)
                reconstruction = sum(weight * value for weight, value in parts.values())
                total = reconstruction + loss_cfg.quantizer_weight * qout.loss
                logged = {f"loss/{name}": value for name, (_, value) in parts.items()}
                logged["loss/quantizer"] = qout.loss
                logged.update({f"quantizer/{name}": value for name, value in qout.losses.items()})
                if gan_active:
                    with frozen(acc.unwrap_model(self.disc)) as disc:
                        g_loss, extra = self.recipe.generator_adversarial(disc, x, recon, loss_cfg.gan_loss)
                    weight = (
                        adaptive_gan_weight(reconstruction, g_loss, self.unwrapped.last_layer_weight())
                        if loss_cfg.adaptive_gan_weight
                        else torch.ones((), device=x.device)
                    )
                    total = total + loss_cfg.gan_weight * weight * g_loss
                    total = total + sum(w * value for w, value in extra.values())
                    logged.update({"loss/generator": g_loss, "loss/adaptive_weight": weight})
                    logged.update({f"loss/{name}": value for name, (_, value) in extra.items()})
                logged["loss/total"] = total

            if not self._all_finite(total):
                # Every process skips together (a lone backward would hang the others' all-reduce).
                self.nan_skips += 1
                self.opt_g.zero_grad(set_to_none=True)
                return {"loss/total": total.detach(), "nan_skips": self.nan_skips}
            self.monitor.update(qout.ids.detach())
            acc.backward(total)
            self._clip_and_step(self.tokenizer, self.opt_g, self.sched_g)

            if gan_active:
                logged.update(self._discriminator_step(x, recon.detach()))
        return {k: (v.detach() if torch.is_tensor(v) else v) for k, v in logged.items()}

    def _discriminator_step(self, x: torch.Tensor, fake: torch.Tensor) -> dict:
        acc, loss_cfg = self.accelerator, self.config.loss
        with acc.autocast():
            real, fake_logits = self.recipe.discriminator_logits(self.disc, x, fake)
            d_loss = discriminator_loss(real, fake_logits, loss_cfg.gan_loss)
            logged = {"loss/discriminator": d_loss}
            if self.lecam is not None:
                penalty = self.lecam(real, fake_logits)
                d_loss = d_loss + loss_cfg.lecam_weight * penalty
                logged["loss/lecam"] = penalty
        acc.backward(d_loss)
        self._clip_and_step(self.disc, self.opt_d, self.sched_d)
        if self.lecam is not None:
            self.lecam.update(_gathered(acc, real), _gathered(acc, fake_logits))
        return logged

    def _clip_and_step(self, model, optimizer, scheduler) -> None:
        acc = self.accelerator
        if acc.sync_gradients:
            if self.config.train.grad_clip > 0:
                acc.clip_grad_norm_(model.parameters(), self.config.train.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

    def _all_finite(self, loss: torch.Tensor) -> bool:
        bad = torch.tensor([0.0 if torch.isfinite(loss).item() else 1.0], device=self.accelerator.device)
        return float(self.accelerator.reduce(bad, reduction="sum").item()) == 0.0

    def seconds_spent(self) -> float:
        return self.train_seconds + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def time_spent(self) -> float:
        """The fraction of train.max_minutes used (0 without a budget)."""
        budget = self.config.train.max_minutes
        return self.seconds_spent() / (60.0 * budget) if budget else 0.0

    def _out_of_time(self) -> bool:
        if not self.config.train.max_minutes:
            return False
        # Every process stops at the same step: the slowest one's clock decides.
        spent = torch.tensor([self.time_spent()], device=self.accelerator.device)
        return float(self.accelerator.reduce(spent, reduction="max").item()) >= 1.0

    # -- logging and checkpoints ------------------------------------------------------------------
    def _after_step(self, last: dict, progress) -> None:
        acc, train = self.accelerator, self.config.train
        step = self.step
        values = {k: float(v) for k, v in last.items()}
        values["lr/generator"] = self.sched_g.get_last_lr()[0]
        values["data/failed_decodes"] = len(self.failed_sources)
        values["nan_skips"] = self.nan_skips
        if acc.is_main_process:
            with open(self.output_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": step, **values}) + "\n")
        progress.update(1)
        progress.set_postfix(loss=f"{values.get('loss/total', float('nan')):.4f}", refresh=False)
        last_step = step == train.max_steps or self._out_of_time()
        if step % train.log_every == 0 or last_step:
            acc.log(values, step=step)
        window_ends = step % train.health_every == 0
        if window_ends or last_step:
            self.log_health(progress, full_window=window_ends)
        if step % train.sample_every == 0 and acc.is_main_process:
            self._log_reconstructions()
        if step % train.checkpoint_every == 0:
            self.save()

    def log_health(self, progress=None, full_window: bool = True) -> list[dict]:
        """Log and reset the codebook health of the window since the last call. `last_health` keeps
        the last full window: the few steps a clock budget leaves after it say little about use."""
        stats = self.monitor.compute()  # all-reduced across processes inside
        self.accelerator.log(self.monitor.log_dict(stats), step=self.step)
        if progress is not None and self.accelerator.is_main_process:
            for index, codebook in enumerate(stats[:MAX_CODEBOOKS_LOGGED]):
                progress.write(f"step {self.step}: codebook {index}: {describe_use(codebook)}")
        for alarm in self.monitor.alarms(stats):
            message = f"step {self.step}: codebook collapse alarm: {alarm}"
            logger.warning(message)
            if progress is not None and self.accelerator.is_main_process:
                progress.write(message)
        if full_window or not self.last_health:
            self.last_health = stats
        self.monitor.reset()
        return stats

    def _log_reconstructions(self) -> None:
        writer = self.accelerator.get_tracker("tensorboard", unwrap=True)
        x = torch.stack([self.dataset[i] for i in range(min(4, len(self.dataset)))]).to(self.accelerator.device)
        model = self.unwrapped
        was_training = model.training
        model.eval()
        with torch.no_grad():
            recon, _ = model(x)
        model.train(was_training)
        self.recipe.log_media(writer, x, recon, self.step)

    def trainer_state(self) -> dict:
        return {
            "step": self.step,
            "nan_skips": self.nan_skips,
            "failed_sources": sorted(self.failed_sources),
            "samples_per_process": self.step * self.config.train.batch_size * self.config.train.grad_accum,
            "train_seconds": self.seconds_spent(),
        }

    def save(self) -> Path:
        ema_state = self.ema.state_dict() if self.ema is not None else None
        return save_checkpoint(
            self.accelerator,
            self.output_dir,
            self.step,
            self.trainer_state(),
            self.config.train.keep_checkpoints,
            ema_state,
        )

    def _resume(self) -> None:
        path = latest_checkpoint(self.output_dir)
        if path is None:
            logger.warning("--resume: no checkpoint in %s, starting from step 0", self.output_dir)
            return
        state = load_checkpoint(self.accelerator, path)
        if self.ema is not None:
            self.ema.load_state_dict(load_file(str(path / EMA_FILE)))
        self.step, self.nan_skips = state["step"], state["nan_skips"]
        self.train_seconds = state.get("train_seconds", 0.0)
        self.failed_sources = set(state["failed_sources"])
        if self.accelerator.is_main_process:
            logger.info("resumed from %s at step %d", path, self.step)


def _gathered(accelerator, logits):
    """Logits from every process: one tensor, or a list of them (one per discriminator scale)."""
    if torch.is_tensor(logits):
        return accelerator.gather(logits.detach())
    return [accelerator.gather(scale.detach()) for scale in logits]


def _flat_hparams(config: dict, prefix: str = "") -> dict:
    """TensorBoard hparams take scalars and strings only."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_hparams(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat
