"""Every size and step count in one place: model configs and the four profiles.

``VQVAE_PROFILE`` = ``smoke`` (CI: each notebook under 60 s on 2 CPU cores),
``class`` (default: each notebook at most 5 minutes on a 2-core laptop CPU),
``pretrained`` (the class profile's sizes; the notebooks load the course models that ship in
``pretrained/default/`` instead of training: 5000 and 9000 steps, three and ten times the class budgets) or
``full`` (best quality, meant for a GPU).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

PROFILES = ("smoke", "class", "pretrained", "full")
SUPPORTS = ("none", "position", "label", "depth")   # SamplingConfig.support
DEFAULT_PROFILE = "class"
PRECISIONS = ("auto", "fp32", "bf16")
UNLIMITED_STEPS = 10**9   # the step count of a run that only a time budget stops
RECON_LOSSES = ("mse", "l1+grad")


@dataclass(frozen=True)
class VQVAEConfig:
    """The VQ-VAE: the defaults are the class profile's model, then the options only the two baselines of the
    reconstruction headline change (``reference``, ``misha``; benchmarks/RESULTS.md compares the three)."""
    hidden_channels: int = 64     # width of the encoder / decoder trunk
    res_channels: int = 32        # bottleneck width inside a residual block
    n_res_blocks: int = 2         # residual blocks at the code resolution (encoder and decoder each)
    downsample: int = 4           # 4: 128x128 -> 32x32 codes; 8: 128x128 -> 16x16
    codebook_size: int = 512      # K
    embedding_dim: int = 64       # D
    beta: float = 0.25            # commitment cost, on ||z_e - sg[e]||^2 (the paper's value)
    ema: bool = True              # EMA codebook updates instead of the codebook loss (the paper's appendix)
    ema_decay: float = 0.99       # gamma of the EMA updates (the paper's value)
    ema_epsilon: float = 1e-5     # Laplace smoothing of the EMA cluster sizes
    codebook_init: str = "data"   # "data" (sampled encoder outputs) | "kmeans" | "random" (uniform in +-1/K) |
                                  # "scaled" (uniform in +-sqrt(3/D)); notebook 02 compares them
    restart_dead: bool = True     # re-seed dead codes on recent encoder outputs: a code is dead when its share of the
    dead_share: float = 1 / 16    # vectors over about the last 3 batches is below this part of a fair share 1 / K
    recon_loss: str = "l1+grad"   # "l1+grad": mean absolute error of the pixels plus that of their vertical and
                                  # horizontal differences (sharper edges than the paper's "mse"; notebook 02,
                                  # benchmarks/RESULTS.md "A sharper decoder")
    # the baselines' options; the course's model keeps these values
    ema_debias: bool = False      # EMA statistics start at zero and are divided by 1 - decay^t (Sonnet's
                                  # ExponentialMovingAverage); False: they start at N_i = 1, m_i = e_i
    beta_term: str = "commitment" # what beta multiplies: "commitment" (the paper, eq. 3) or "codebook" (the
                                  # MishaLaskin/vqvae code: beta * ||sg[z_e] - e||^2, commitment weight 1)
    input_offset: float = 0.0     # the encoder sees (x - input_offset) * input_scale for x in [0, 1], and the
    input_scale: float = 1.0      # reconstruction error is measured there (Sonnet: [-0.5, 0.5]; Misha: [-1, 1])
    recon_divisor: float = 1.0    # the reconstruction error is divided by this (Sonnet and Misha: the variance
                                  # of the training slices in [0, 1]; set by ``with_data_variance``)

    def __post_init__(self):
        if self.downsample not in (2, 4, 8):
            raise ValueError(f"VQVAEConfig.downsample must be 2, 4 or 8, got {self.downsample}")
        if self.codebook_init not in ("random", "scaled", "data", "kmeans"):
            raise ValueError(
                "VQVAEConfig.codebook_init must be 'random', 'scaled', 'data' or 'kmeans', "
                f"got {self.codebook_init!r}"
            )
        if self.beta_term not in ("commitment", "codebook"):
            raise ValueError(f"VQVAEConfig.beta_term must be 'commitment' or 'codebook', got {self.beta_term!r}")
        if self.ema_debias and (not self.ema or self.restart_dead or self.codebook_init in ("data", "kmeans")):
            raise ValueError("VQVAEConfig.ema_debias (Sonnet's zero-started EMA) needs ema=True, restart_dead=False "
                             f"and codebook_init 'random' or 'scaled'; got ema={self.ema}, "
                             f"restart_dead={self.restart_dead}, codebook_init={self.codebook_init!r}")
        if not 0 < self.dead_share < 1:
            raise ValueError(f"VQVAEConfig.dead_share must lie in (0, 1), got {self.dead_share}")
        if self.recon_loss not in RECON_LOSSES:
            raise ValueError(f"VQVAEConfig.recon_loss must be one of {RECON_LOSSES}, got {self.recon_loss!r}")
        if self.input_scale <= 0 or self.recon_divisor <= 0:
            raise ValueError(f"VQVAEConfig.input_scale and recon_divisor must be positive, got {self.input_scale} "
                             f"and {self.recon_divisor}")
        for name in ("hidden_channels", "res_channels", "codebook_size", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"VQVAEConfig.{name} must be positive, got {getattr(self, name)}")

    @staticmethod
    def reference() -> VQVAEConfig:
        """The DeepMind Sonnet example's model (sonnet/examples/vqvae_example.ipynb, v2) with its
        ``snt.nets.VectorQuantizerEMA`` (sonnet/src/nets/vqvae.py): 128 hidden, 32 residual channels, 2
        residual layers, K = 512, D = 64, beta = 0.25 on the commitment term, EMA decay 0.99, epsilon 1e-5;
        codebook from ``VarianceScaling(distribution='uniform')`` over a (D, K) shape, i.e. uniform in
        +-sqrt(3 / D); EMA statistics from zero with debiasing (sonnet/src/moving_averages.py); inputs scaled
        to [-0.5, 0.5] and the reconstruction MSE divided by the training data's variance (the example's
        ``cast_and_normalise_images`` and ``recon_error``: call ``with_data_variance``). No dead-code restarts.
        (The example's notebook defaults to ``vq_use_ema = False``; EMA is its documented option, used here.)
        Training (``cli.REFERENCE_TRAIN``): Adam 3e-4, batch 32, constant rate, no clipping."""
        return VQVAEConfig(hidden_channels=128, res_channels=32, n_res_blocks=2, downsample=4,
                           codebook_size=512, embedding_dim=64, beta=0.25, ema=True, ema_decay=0.99,
                           ema_epsilon=1e-5, codebook_init="scaled", restart_dead=False, ema_debias=True,
                           input_offset=0.5, input_scale=1.0, recon_loss="mse")

    @staticmethod
    def misha() -> VQVAEConfig:
        """MishaLaskin/vqvae (main.py, models/quantizer.py), where most OASIS course projects start: 128
        hidden, 32 residual channels, 2 residual layers, K = 512, D = 64, beta = 0.25, codebook loss without
        EMA, codebook uniform in +-1/K; as its code computes the loss, beta multiplies the codebook term and
        the commitment term has weight 1 (``beta_term="codebook"``); inputs scaled to [-1, 1]
        (``Normalize(0.5, 0.5)``) and the reconstruction MSE divided by the variance of the training data
        in [0, 1] (``with_data_variance``). Training (``cli.MISHA_TRAIN``): Adam 3e-4 with amsgrad, batch 32,
        constant rate, no clipping."""
        return VQVAEConfig(hidden_channels=128, res_channels=32, n_res_blocks=2, downsample=4,
                           codebook_size=512, embedding_dim=64, beta=0.25, ema=False, codebook_init="random",
                           restart_dead=False, beta_term="codebook", input_offset=0.5, input_scale=2.0,
                           recon_loss="mse")

    def with_data_variance(self, variance: float) -> VQVAEConfig:
        """This config with the reconstruction MSE divided by ``variance`` (of the training slices in [0, 1])."""
        return replace(self, recon_divisor=float(variance))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """One training run of ``train.fit``; the defaults are how the class profile trains its VQ-VAE (its budget,
    ``minutes``, and the prior's settings are the profile's own choices, in ``_class``)."""
    batch_size: int = 8           # small batches: on a CPU more updates beat bigger batches (RESULTS.md)
    steps: int = 20000            # stop after this many optimizer steps ...
    minutes: float | None = None  # ... or after this much training time, whichever comes first
    lr: float = 2e-3
    warmup_steps: int = 100
    schedule: str = "cosine"      # "cosine" (decays to 5 % of lr at the last step) | "constant" (the baselines)
    grad_clip: float = 1.0        # max gradient norm (0: no clipping, the baselines)
    eval_every: int = 500         # validation every N steps (0: only at the end)
    checkpoint_every: int = 500   # checkpoint every N steps (and always at the end)
    seed: int = 0
    amsgrad: bool = False         # the AMSGrad variant of Adam (MishaLaskin/vqvae)
    precision: str = "auto"       # "auto" (bf16 autocast on CUDA, else fp32) | "fp32" | "bf16"
    channels_last: bool = False   # NHWC memory layout for the convolutions
    compile: bool = False         # torch.compile the model for training

    def with_budget(self, minutes: float | None = None, steps: int | None = None) -> TrainConfig:
        """This config with a wall-clock budget and/or a step count (what ``--minutes`` / ``--steps`` ask for): a
        budget alone lets the clock decide (the schedule anneals by elapsed time); neither keeps this budget."""
        if minutes is not None and steps is None:
            steps = UNLIMITED_STEPS
        return replace(self, minutes=minutes if minutes is not None else self.minutes if steps is None else None,
                       steps=steps if steps is not None else self.steps)

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"TrainConfig.steps must be >= 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"TrainConfig.minutes must be positive, got {self.minutes}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"TrainConfig.schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PixelCNNConfig:
    """The gated PixelCNN prior (``vqvae_lib.pixelcnn``); the defaults are the class profile's."""
    channels: int = 32            # C: code embedding size and width of both stacks
    n_layers: int = 10            # gated layers: the first with mask A, the others mask B
    kernel_size: int = 5          # k (odd): the vertical stack sees k columns, the horizontal k // 2 + 1
    depth_buckets: int = 12       # OASIS layout: the labels are this many equal bands of the slice index (RESULTS.md)
    position: bool = True         # learned row and column biases before each gate: where am I in the map?
    codebook_size: int = 512      # K: filled in from the VQ-VAE by the pipeline
    n_labels: int = 0             # label classes (0: unconditional): filled in from the data by the pipeline
    height: int = 0               # code map size (h, w) for the position biases: filled in by the pipeline
    width: int = 0

    def __post_init__(self):
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"PixelCNNConfig.kernel_size must be odd and >= 3, got {self.kernel_size}")
        for name in ("channels", "n_layers", "codebook_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"PixelCNNConfig.{name} must be positive, got {getattr(self, name)}")
        if self.height < 0 or self.width < 0:
            raise ValueError(f"PixelCNNConfig.height and width must be >= 0, got {self.height} and {self.width}")
        if self.n_labels < 0 or self.depth_buckets < 1:
            raise ValueError(f"PixelCNNConfig.n_labels must be >= 0 and depth_buckets >= 1, got "
                             f"{self.n_labels} and {self.depth_buckets}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SamplingConfig:
    """How new code maps are drawn by default (notebooks and ``python -m vqvae_lib sample``); the defaults are the
    class profile's: a little colder than the prior (T = 0.7), every code, but only codes that training maps of the
    sample's depth band have at each position (RESULTS.md, "How the class settings were chosen")."""
    temperature: float = 0.7      # logits / T before the softmax
    top_k: int | None = None      # only the k likeliest codes stay possible (None: all K)
    support: str = "depth"        # "none" | "position": only codes the training maps have at that position |
                                  # "label": ... in maps of the sample's label | "depth": "label" when the labels
                                  # are slice depths, else "position" (``sampling.support_for``)
    support_radius: int = 0       # ... or within this many positions of it

    def __post_init__(self):
        if self.temperature <= 0 or (self.top_k is not None and self.top_k < 1):
            raise ValueError(f"SamplingConfig needs temperature > 0 and top_k >= 1 or None, got {self.temperature} "
                             f"and {self.top_k}")
        if self.support not in SUPPORTS or self.support_radius < 0:
            raise ValueError(f"SamplingConfig.support must be one of {SUPPORTS} and support_radius >= 0, got "
                             f"{self.support!r} and {self.support_radius}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    name: str
    image_size: int               # slices are padded to square, then resized to this
    vqvae: VQVAEConfig
    vqvae_train: TrainConfig
    eval_images: int | None       # cap on images scored in notebooks (None: the whole split)
    demo_image_size: int          # small, fast side experiments (EMA vs plain codebook, codebook sizes) ...
    demo_train: TrainConfig       # ... trained this long
    prior: PixelCNNConfig         # the PixelCNN prior over the VQ-VAE's code maps ...
    prior_train: TrainConfig      # ... trained this long
    sampling: SamplingConfig = SamplingConfig()
    description: str = ""
    course_models: str | None = None   # a folder of the checkout whose trained models the notebooks load instead

    def replace(self, **changes) -> Profile:
        return replace(self, **changes)


def _smoke() -> Profile:
    return Profile(
        name="smoke", image_size=64,
        vqvae=VQVAEConfig(hidden_channels=32, res_channels=16, n_res_blocks=1, codebook_size=64, embedding_dim=16),
        vqvae_train=TrainConfig(batch_size=16, steps=60, warmup_steps=10, eval_every=30, checkpoint_every=30),
        eval_images=64, demo_image_size=32,
        demo_train=TrainConfig(steps=40, warmup_steps=5, eval_every=0, checkpoint_every=0),
        prior=PixelCNNConfig(channels=16, n_layers=3, kernel_size=3),
        prior_train=TrainConfig(batch_size=16, steps=40, lr=3e-3, warmup_steps=5, eval_every=20, checkpoint_every=20),
        description="CI check: tiny sizes, each notebook under 60 s on 2 CPU cores",
    )


def _class() -> Profile:
    return Profile(
        name="class", image_size=128,
        vqvae=VQVAEConfig(),
        vqvae_train=TrainConfig(minutes=3.0),          # 3 minutes of a 2-core CPU, turned into steps at the start
        eval_images=None,
        demo_image_size=64,
        demo_train=TrainConfig(batch_size=16, steps=200, warmup_steps=20, eval_every=0, checkpoint_every=0),
        prior=PixelCNNConfig(),
        # 4 minutes, so that VQ-VAE + prior take 7; validated once, at the end (a validation costs notebook 04
        # about 6 s); the size and rate won a search at this budget (RESULTS.md, "How the class settings were chosen")
        prior_train=TrainConfig(minutes=4.0, lr=8e-3, eval_every=0),
        description="a class on laptops: each notebook at most 5 minutes on a 2-core CPU",
    )


def _pretrained() -> Profile:
    """The course models: the class profile's VQ-VAE trained 5000 steps and its prior 9000, about 10 and 47 minutes of
    a 2-core CPU alone (three and ten times the class budgets: clearer anatomy, RESULTS.md "Sample quality against
    the prior's training time"). Step counts, not minutes, so that they are made again bit for bit
    (``train-vqvae --profile pretrained``, pretrained/README.md); the notebooks only load them."""
    base = _class()
    return base.replace(name="pretrained", vqvae_train=base.vqvae_train.with_budget(steps=5000),
                        prior_train=base.prior_train.with_budget(steps=9000), course_models="pretrained/default",
                        description="the course models in pretrained/default, loaded instead of trained (the small "
                                    "demo models of the experiments still train)")


def _full() -> Profile:
    return Profile(
        name="full", image_size=128,
        vqvae=VQVAEConfig(hidden_channels=128, res_channels=64, n_res_blocks=3),
        vqvae_train=TrainConfig(batch_size=64, lr=1e-3, warmup_steps=200, eval_every=1000, checkpoint_every=1000),
        eval_images=None,
        demo_image_size=64,
        demo_train=TrainConfig(batch_size=16, steps=200, warmup_steps=20, eval_every=0, checkpoint_every=0),
        prior=PixelCNNConfig(channels=128, n_layers=15),
        prior_train=TrainConfig(batch_size=64, lr=1e-3, warmup_steps=200, eval_every=1000, checkpoint_every=1000),
        description="best quality; meant for a GPU",
    )


_PRESETS = {"smoke": _smoke, "class": _class, "pretrained": _pretrained, "full": _full}


def profile_name(name: str | None = None) -> str:
    """The profile asked for: ``name``, else ``$VQVAE_PROFILE``, else ``class``."""
    name = name or os.environ.get("VQVAE_PROFILE") or DEFAULT_PROFILE
    name = name.strip().lower()
    if name not in _PRESETS:
        raise ValueError(f"VQVAE_PROFILE must be one of {', '.join(PROFILES)}; got {name!r}")
    return name


def get_profile(name: str | None = None) -> Profile:
    """The sizes and step counts of a profile (see module docstring)."""
    return _PRESETS[profile_name(name)]()
