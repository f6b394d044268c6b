"""Ready-made SDE-BNN models: a regressor and a classifier with ``model``, ``guide``, ``predict``.

Architecture (Xu et al. 2022, section 5): ``x -> [linear encoder or zero augmentation] -> SDE-BNN
block(s) -> linear readout -> likelihood``. The encoder, the readout, the blocks' ``w(0)`` and the
regression noise are point estimates (``pyro.param`` sites); every block's weight path is a
global latent. The likelihood sits in ``pyro.plate("data", n, subsample_size=...)``, so a
minibatch's log likelihood is scaled by ``n / batch`` and the ELBO is an unbiased estimate of the
full-data ELBO without any hand-set KL coefficient.
"""

from __future__ import annotations

from typing import ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Predictive
from pyro.nn import PyroModule, PyroParam
from torch import nn

from .._validation import check_choice, check_positive, check_positive_int, check_tensor
from ..predictive import RegressionPrediction, regression_prediction
from .block import SDEBNNBlock
from .processes import OUPrior

__all__ = ["SDEBNNClassifier", "SDEBNNRegressor"]


class _SDEBNN(PyroModule):
    """Shared body: encoder, blocks, readout; subclasses add the likelihood."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: int,
        hidden: int | None,
        steps: int,
        num_blocks: int,
        prior: OUPrior | None,
        augment: int | None,
        subsample_size: int | None,
        block_kwargs: dict | None,
        field: str = "mlp",
        image_size: tuple[int, int] = (8, 8),
    ) -> None:
        super().__init__()
        self.field = check_choice("field", field, ("mlp", "conv"))
        self.image_size = tuple(check_positive_int("image_size", s) for s in image_size)
        self.in_features = check_positive_int("in_features", in_features)
        width = check_positive_int("width", width)
        num_blocks = check_positive_int("num_blocks", num_blocks)
        self.subsample_size = (
            None if subsample_size is None else check_positive_int("subsample_size", subsample_size)
        )
        prior = OUPrior(sigma=0.1) if prior is None else prior
        kwargs = dict(block_kwargs or {})
        if augment is None and field == "conv":
            self.encoder = PyroModule[nn.Conv2d](in_features, width, 3, padding=1)
            dim, first_augment = width, 0
        elif augment is None:
            self.encoder = PyroModule[nn.Linear](in_features, width)
            dim, first_augment = width, 0
        else:
            self.encoder = None
            first_augment = check_positive_int("augment", augment, minimum=0)
            dim = in_features + first_augment
        blocks = []
        for i in range(num_blocks):
            blocks.append(
                SDEBNNBlock(
                    dim if i else dim - first_augment, hidden=hidden, steps=steps, prior=prior,
                    augment=0 if i else first_augment, name=f"blocks.{i}", field=field, **kwargs,
                )
            )
        self.blocks = PyroModule[nn.ModuleList](blocks)
        pixels = self.image_size[0] * self.image_size[1] if field == "conv" else 1
        self.readout = PyroModule[nn.Linear](dim * pixels, out_features)

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if self.field == "conv":
            check_tensor("x", x, ndim=4, floating=True)
            if x.shape[1] != self.in_features or tuple(x.shape[2:]) != self.image_size:
                h, w = self.image_size
                raise ValueError(
                    f"x must have shape (n, {self.in_features}, {h}, {w}), got {tuple(x.shape)}"
                )
            return x
        check_tensor("x", x, ndim=2, floating=True)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have shape (n, {self.in_features}), got {tuple(x.shape)}"
            )
        return x

    def _plate(self, n: int, subsample_size: int | None):
        size = self.subsample_size if subsample_size is None else subsample_size
        if size is not None:
            size = min(check_positive_int("subsample_size", size), n)
        return pyro.plate("data", n, subsample_size=size)

    def _forward(self, x: torch.Tensor, paths: list[torch.Tensor]) -> torch.Tensor:
        h = x if self.encoder is None else self.encoder(x)
        for block, path in zip(self.blocks, paths):
            h = block.integrate(h, path)
        if self.field == "conv":
            h = h.flatten(-3)
        return self.readout(h)

    def guide(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
              subsample_size: int | None = None) -> None:
        """The variational posterior: every block's posterior weight path."""
        with self._pyro_context:
            for block in self.blocks:
                block.guide_part()

    def sample_paths(self, num_paths: int = 5, block: int = 0,
                     seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw weight paths of one block from the posterior, for plotting.

        Returns ``(grid, paths)``: the times ``(K+1,)`` and ``(num_paths, K+1, d_w)``.
        """
        num_paths = check_positive_int("num_paths", num_paths)
        b = self.blocks[block]
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        with torch.no_grad(), pyro.poutine.block():
            if b.w0_mode == "point":
                w0 = b.w0.expand(num_paths, -1)
            else:  # w(0) drawn from its guide too
                noise = torch.randn(num_paths, b.num_weights, generator=gen)
                w0 = b.w0_loc + b.w0_log_scale.exp() * noise.to(b.w0_loc)
            q = b.posterior_path(w0, generator=gen)
            return b.grid, q.with_start(q.rsample())

    def _predictive(self, x: torch.Tensor, site: str, num_samples: int, seed: int | None,
                    chunk: int) -> torch.Tensor:
        num_samples = check_positive_int("num_samples", num_samples)
        self._check_x(x)
        out = []
        devices = [x.device.index or 0] if x.is_cuda else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            done = 0
            while done < num_samples:
                s = min(chunk, num_samples - done)
                pred = Predictive(self.model, guide=self.guide, num_samples=s, parallel=True,
                                  return_sites=(site,))
                out.append(pred(x, subsample_size=x.shape[0])[site].reshape(s, x.shape[0], -1))
                done += s
        return torch.cat(out)


class SDEBNNRegressor(_SDEBNN):
    """SDE-BNN regression: ``y ~ N(readout(h(1)), noise^2)`` (Xu et al. 2022).

    Args:
        in_features: input size.
        width: state size of the blocks (after the linear encoder).
        hidden: width of ``f_h`` (default ``width``).
        steps: grid steps per block.
        num_blocks: blocks in sequence, each with its own weight SDE.
        prior: the OU prior (default ``OUPrior(sigma=0.1)``).
        noise: fixed observation noise, or ``None`` to learn it (a point estimate, init 0.1).
        augment: ``None`` for a linear encoder; an int for ANODE-style ``h(0) = [x, 0]``.
        subsample_size: default minibatch size of the data plate (``None``: all data).
        block_kwargs: passed on to :class:`SDEBNNBlock` (``solver``, ``w0``, ``rank``, ...).

    Example:
        >>> m = SDEBNNRegressor(1, width=16, steps=10)
        >>> bayesdepth.fit(m.model, m.guide, x, y, num_steps=1000)
        >>> m.predict(x_test).mean
    """

    #: Fit settings of :meth:`toy` on :func:`bayesdepth.data.toy_regression_1d` (pass to ``fit``).
    TOY_FIT: ClassVar[dict] = {
        "num_steps": 2000, "lr": 2e-2, "final_lr_fraction": 0.1, "anneal_steps": 250,
        "num_particles": 16, "vectorize_particles": True,
    }

    @classmethod
    def toy(cls, seed: int = 0) -> SDEBNNRegressor:
        """The default model for the 1-D toy regression (fit it with ``**TOY_FIT``).

        Width 16, 10 Euler steps, ``OUPrior(sigma=0.03)``, observation noise fixed at 0.1 (the
        data's), and ``w(0)`` a Normal latent with prior ``N(mu, 0.7^2 I)`` whose mean ``mu`` is
        learned (empirical Bayes, see :class:`SDEBNNBlock`); initial weights drawn with
        ``seed``. With :attr:`TOY_FIT` (16 vectorised particles) it reaches a training RMSE
        below 0.15 and a predictive sd in the gap between the clusters over 3x that on them
        (``tests/test_sde_models.py``, seed 0; other seeds, some of which miss, in docs/sdebnn.md).
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(
                in_features=1, width=16, steps=10, prior=OUPrior(sigma=0.03), noise=0.1,
                block_kwargs={"w0": "normal", "w0_prior_scale": 0.7, "w0_prior_mean": "learned"},
            )

    def __init__(
        self,
        in_features: int = 1,
        width: int = 16,
        hidden: int | None = None,
        steps: int = 10,
        num_blocks: int = 1,
        prior: OUPrior | None = None,
        noise: float | None = None,
        augment: int | None = None,
        subsample_size: int | None = None,
        block_kwargs: dict | None = None,
    ) -> None:
        super().__init__(in_features, 1, width, hidden, steps, num_blocks, prior, augment,
                         subsample_size, block_kwargs)
        if noise is None:
            self.noise = PyroParam(torch.tensor(0.1), dist.constraints.positive)
        else:
            self.noise_value = check_positive("noise", noise)

    def _noise(self) -> torch.Tensor | float:
        return self.noise if "noise_value" not in self.__dict__ else self.noise_value

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None,
              subsample_size: int | None = None) -> torch.Tensor:
        """``y_i ~ N(f(x_i; w), noise^2)`` with the weight paths drawn from the OU prior."""
        self._check_x(x)
        if y is not None:
            check_tensor("y", y, ndim=1, floating=True)
            if y.shape[0] != x.shape[0]:
                raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        with self._pyro_context:
            paths = [block.model_part() for block in self.blocks]
            noise = self._noise()
            with self._plate(x.shape[0], subsample_size) as idx:
                mean = self._forward(x[idx], paths).squeeze(-1)
                pyro.deterministic("mean", mean)
                return pyro.sample("y", dist.Normal(mean, noise),
                                   obs=None if y is None else y[idx])

    def predict(self, x: torch.Tensor, num_samples: int = 100, seed: int | None = 0,
                chunk: int = 50) -> RegressionPrediction:
        """Predictive mean and sd at ``x`` over ``num_samples`` posterior weight paths."""
        f = self._predictive(x, "mean", num_samples, seed, chunk).squeeze(-1)
        return regression_prediction(f, self._noise_value_now())

    def _noise_value_now(self) -> float:
        if "noise_value" in self.__dict__:
            return self.noise_value
        with self._pyro_context:
            return float(self.noise.detach())


class SDEBNNClassifier(_SDEBNN):
    """SDE-BNN classification: ``y ~ Categorical(logits=readout(h(1)))``.

    Same arguments as :class:`SDEBNNRegressor` plus ``num_classes`` (no ``noise``) and
    ``field``: ``"mlp"`` for inputs ``(n, in_features)``, or ``"conv"`` for images
    ``(n, in_features, *image_size)`` (a 3x3 convolutional encoder to ``width`` channels, blocks
    whose ``f_h`` is two 3x3 convolutions, a linear readout of the flattened feature map).
    ``predict`` returns class probabilities averaged over posterior samples (never averaged
    logits).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        width: int = 32,
        hidden: int | None = None,
        steps: int = 10,
        num_blocks: int = 1,
        prior: OUPrior | None = None,
        augment: int | None = None,
        subsample_size: int | None = None,
        block_kwargs: dict | None = None,
        field: str = "mlp",
        image_size: tuple[int, int] = (8, 8),
    ) -> None:
        self_classes = check_positive_int("num_classes", num_classes, minimum=2)
        super().__init__(in_features, self_classes, width, hidden, steps, num_blocks, prior,
                         augment, subsample_size, block_kwargs, field, image_size)
        self.num_classes = self_classes

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None,
              subsample_size: int | None = None) -> torch.Tensor:
        """``y_i ~ Categorical(softmax(f(x_i; w)))`` with the weight paths from the OU prior."""
        self._check_x(x)
        if y is not None:
            check_tensor("y", y, ndim=1)
            if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
                raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
            if y.shape[0] != x.shape[0]:
                raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        with self._pyro_context:
            paths = [block.model_part() for block in self.blocks]
            with self._plate(x.shape[0], subsample_size) as idx:
                logits = self._forward(x[idx], paths)
                pyro.deterministic("probs", logits.softmax(-1))
                return pyro.sample("y", dist.Categorical(logits=logits),
                                   obs=None if y is None else y[idx].long())

    def predict(self, x: torch.Tensor, num_samples: int = 20, seed: int | None = 0,
                chunk: int = 10) -> torch.Tensor:
        """Class probabilities ``(n, num_classes)`` averaged over ``num_samples`` weight paths."""
        return self._predictive(x, "probs", num_samples, seed, chunk).mean(0)
