"""Every size and step count in one place: model configs and the three profiles.

``VQVAE_PROFILE`` = ``smoke`` (CI: each notebook under 60 s on 2 CPU cores),
``class`` (default: each notebook at most 5 minutes on a 2-core laptop CPU) or
``full`` (best quality, meant for a GPU).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

PROFILES = ("smoke", "class", "full")
ARCHITECTURES = ("gated", "transformer", "masked")
SUPPORTS = ("none", "position", "label", "depth")   # SamplingConfig.support
DEFAULT_PROFILE = "class"
PRECISIONS = ("auto", "fp32", "bf16")
RECON_LOSSES = ("mse", "l1+grad")


@dataclass(frozen=True)
class VQVAEConfig:
    in_channels: int = 1          # grayscale slices
    hidden_channels: int = 64     # width of the encoder / decoder trunk
    res_channels: int = 32        # bottleneck width inside a residual block
    n_res_blocks: int = 2         # residual blocks at the code resolution (encoder and decoder each)
    downsample: int = 4           # 4: 128x128 -> 32x32 codes; 8: 128x128 -> 16x16
    codebook_size: int = 512      # K
    embedding_dim: int = 64       # D
    beta: float = 0.25            # commitment cost, on ||z_e - sg[e]||^2
    ema: bool = True              # EMA codebook updates instead of the codebook loss
    ema_decay: float = 0.99
    ema_epsilon: float = 1e-5     # Laplace smoothing of the EMA cluster sizes
    codebook_init: str = "data"   # "random" (uniform in +-1/K) | "scaled" (uniform in +-sqrt(3/D)) | "data"
                                  # (sampled encoder outputs) | "kmeans"
    restart_dead: bool = True     # re-seed unused codes from recent encoder outputs
    dead_threshold: float = 1.0   # a code whose EMA usage (vectors per batch) falls below this is dead
    ema_debias: bool = False      # EMA statistics start at zero and are divided by 1 - decay^t (Sonnet's
                                  # ExponentialMovingAverage); False: they start at N_i = 1, m_i = e_i
    beta_term: str = "commitment" # what beta multiplies: "commitment" (the paper, eq. 3) or "codebook" (the
                                  # MishaLaskin/vqvae code: beta * ||sg[z_e] - e||^2, commitment weight 1)
    input_offset: float = 0.0     # the encoder sees (x - input_offset) * input_scale for x in [0, 1], and the
    input_scale: float = 1.0      # reconstruction error is measured there (Sonnet: [-0.5, 0.5]; Misha: [-1, 1])
    recon_divisor: float = 1.0    # the reconstruction MSE is divided by this (Sonnet and Misha: the variance
                                  # of the training slices in [0, 1]; set by ``with_data_variance``)
    code_noise: float = 0.0       # in training, this share of positions is decoded from another position's code
                                  # (of the same batch): a decoder that copes with a prior's mistakes
    recon_loss: str = "mse"       # "mse" (the paper's) | "l1+grad": mean absolute error of the pixels plus that of
                                  # their vertical and horizontal differences (``vqvae.reconstruction_loss``): sharper
                                  # edges (benchmarks/RESULTS.md, "A sharper decoder"); the three profiles use it

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
        if self.recon_loss not in RECON_LOSSES:
            raise ValueError(f"VQVAEConfig.recon_loss must be one of {RECON_LOSSES}, got {self.recon_loss!r}")
        if not 0.0 <= self.code_noise < 1.0:
            raise ValueError(f"VQVAEConfig.code_noise must lie in [0, 1), got {self.code_noise}")
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
                           input_offset=0.5, input_scale=1.0)

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
                           restart_dead=False, beta_term="codebook", input_offset=0.5, input_scale=2.0)

    def with_data_variance(self, variance: float) -> VQVAEConfig:
        """This config with the reconstruction MSE divided by ``variance`` (of the training slices in [0, 1])."""
        return replace(self, recon_divisor=float(variance))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 32
    steps: int = 1000             # stop after this many optimizer steps ...
    minutes: float | None = None  # ... or after this much training time, whichever comes first
    lr: float = 1e-3
    warmup_steps: int = 50
    schedule: str = "cosine"      # "cosine" (decays to lr_min_ratio * lr at `steps`) | "constant"
    lr_min_ratio: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 200         # validation SSIM every N steps (0: never)
    checkpoint_every: int = 200   # checkpoint every N steps (and always at the end)
    seed: int = 0
    amsgrad: bool = False         # the AMSGrad variant of Adam (MishaLaskin/vqvae)
    precision: str = "auto"       # "auto" (bf16 autocast on CUDA, else fp32) | "fp32" | "bf16"
    channels_last: bool = False   # NHWC memory layout for the convolutions
    compile: bool = False         # torch.compile the model for training
    weight_ema: float = 0.0       # > 0: also keep an exponential moving average of the weights (Polyak averaging);
                                  # validation scores it, the checkpoint's "model" holds it and ``fit`` returns it

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"TrainConfig.steps must be >= 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"TrainConfig.minutes must be positive, got {self.minutes}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"TrainConfig.schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not 0.0 <= self.weight_ema < 1.0:
            raise ValueError(f"TrainConfig.weight_ema must lie in [0, 1), got {self.weight_ema}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PixelCNNConfig:
    architecture: str = "gated"   # "gated": the gated PixelCNN (vqvae_lib.pixelcnn); "transformer": a causal
                                  # transformer over the same maps (vqvae_lib.transformer); "masked": a masked-code
                                  # U-Net drawn in mask_steps parallel steps (vqvae_lib.masked)
    channels: int = 32            # C: code embedding size and width of both stacks (transformer: model width)
    n_layers: int = 10            # gated layers: the first with mask A, the others mask B (transformer: blocks)
    heads: int = 4                # attention heads (transformer only; C must be a multiple)
    kernel_size: int = 5          # k (odd): the vertical stack sees k columns, the horizontal k // 2 + 1 (gated only)
    conditional: bool = True      # a per-layer label bias before each gate (when the data has labels)
    depth_buckets: int = 12       # OASIS layout: labels are this many equal bins of the slice index (12 bands of 3
                                  # slices on the built-in data; benchmarks/sample_quality.py --variant depth4 /
                                  # depth9 / depth12 / depth18: finer bands give samples closer to real slices)
    position: bool = True         # learned row and column biases before each gate (where am I in the map?);
                                  # gated only: a transformer always has position embeddings
    mirror: bool = False          # gated only: a position in the right half of a row also reads the code at its
                                  # mirror position (i, w - 1 - j), drawn before it (left-right symmetry)
    init_from_codes: bool = False # start from the data: code embedding = the codebook's principal components,
                                  # output = the training histogram of codes (``pixelcnn.init_from_codes``)
    codebook_size: int = 512      # K: filled in from the VQ-VAE by the pipeline
    n_labels: int = 0             # label classes (0: unconditional): filled in from the data by the pipeline
    height: int = 0               # code map size (h, w) for the position biases: filled in by the pipeline
    width: int = 0
    coarse_codes: int = 0         # > 0: a coarse-to-fine prior (vqvae_lib.coarse) with this many coarse codes
    coarse_factor: int = 2        # ... each coarse code summarising a factor x factor block of codes
    code_dim: int = 0             # D of the VQ-VAE's codebook (coarse-to-fine only): filled in by the pipeline
    cond_channels: int = 0        # channels of a conditioning map before every gate (set by vqvae_lib.coarse)
    mask_steps: int = 12          # masked prior only: parallel sampling steps (and groups of its eval likelihood)

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"PixelCNNConfig.architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.mask_steps < 1:
            raise ValueError(f"PixelCNNConfig.mask_steps must be >= 1, got {self.mask_steps}")
        if self.architecture == "transformer" and (self.heads < 1 or self.channels % self.heads):
            raise ValueError(f"PixelCNNConfig.heads must be >= 1 and divide channels for a transformer prior; got "
                             f"channels={self.channels}, heads={self.heads}")
        if self.architecture != "gated" and (self.coarse_codes or self.cond_channels or self.init_from_codes):
            raise ValueError(f"a {self.architecture} prior has no coarse map, conditioning map or init_from_codes; got "
                             f"coarse_codes={self.coarse_codes}, cond_channels={self.cond_channels}, "
                             f"init_from_codes={self.init_from_codes}")
        if self.mirror and (self.architecture != "gated" or self.coarse_codes or self.cond_channels):
            raise ValueError(f"PixelCNNConfig.mirror is for a one-level gated prior, got architecture "
                             f"{self.architecture!r}, coarse_codes={self.coarse_codes}, "
                             f"cond_channels={self.cond_channels}")
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"PixelCNNConfig.kernel_size must be odd and >= 3, got {self.kernel_size}")
        for name in ("channels", "n_layers", "codebook_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"PixelCNNConfig.{name} must be positive, got {getattr(self, name)}")
        if self.coarse_codes < 0 or self.coarse_factor < 2 or self.cond_channels < 0:
            raise ValueError(f"PixelCNNConfig.coarse_codes must be >= 0, coarse_factor >= 2 and cond_channels >= 0, "
                             f"got {self.coarse_codes}, {self.coarse_factor} and {self.cond_channels}")
        if self.init_from_codes and self.coarse_codes:
            raise ValueError("PixelCNNConfig.init_from_codes is for a one-level prior; a coarse-to-fine prior "
                             f"(coarse_codes={self.coarse_codes}) starts at random")
        if self.height < 0 or self.width < 0:
            raise ValueError(f"PixelCNNConfig.height and width must be >= 0, got {self.height} and {self.width}")
        if self.n_labels < 0 or self.depth_buckets < 1:
            raise ValueError(f"PixelCNNConfig.n_labels must be >= 0 and depth_buckets >= 1, got "
                             f"{self.n_labels} and {self.depth_buckets}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SamplingConfig:
    """How new code maps are drawn by default (notebooks and ``python -m vqvae_lib sample``)."""
    temperature: float = 1.0      # logits / T before the softmax
    top_k: int | None = None      # only the k likeliest codes stay possible (None: all K)
    support: str = "none"         # "none" | "position": only codes the training maps have at that position |
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
    demo_image_size: int = 64     # small, fast side experiments (EMA vs plain codebook, codebook sizes) ...
    demo_train: TrainConfig = TrainConfig(batch_size=16, steps=200, lr=2e-3, warmup_steps=20, eval_every=0,
                                          checkpoint_every=0)  # ... trained this long
    prior: PixelCNNConfig = PixelCNNConfig()   # the PixelCNN prior over the VQ-VAE's code maps ...
    prior_train: TrainConfig = TrainConfig(batch_size=8, steps=20000, minutes=3.0, lr=8e-3, warmup_steps=100,
                                           eval_every=500, checkpoint_every=500)  # ... trained this long
    # chosen by measurement (benchmarks/sample_quality.py, 256 samples, two sampling seeds each; RESULTS.md): drawing
    # only codes that training maps of the sample's depth band have at each position (support "depth") removes the
    # border tissue and lifts NN SSIM (0.656 -> 0.670 at T = 1, top-k 32, on one prior).
    # With that support a colder temperature lifts NN SSIM further but costs diversity. On the notebooks' class run
    # (l1+grad VQ-VAE, 12 depth bands, prior 887 steps; 256 samples, seeds 0 / 1; two-sample score: the mean of three
    # critics trained to the end; top-k 32), T = 0.9 / 0.85 / 0.8 / 0.75 / 0.7 give NN SSIM 0.693 / 0.694 /
    # 0.695-0.696 / 0.698-0.701 / 0.701-0.703, pairwise 0.550-0.570 (real 0.524, bound 0.574), critic 0.97-0.98 at
    # every one: T = 0.7 is the only setting at the 0.70 target on both seeds (by 0.001-0.003, about the spread between
    # seeds; on two other trainings of these settings T = 0.7 / 0.8 give NN 0.707-0.709 / 0.704). T = 0.8 was the
    # setting until 2026-12-06 (chosen on a squared-error VQ-VAE: 0.701 / 0.702 there).
    # No top-k since 2026-12-06 (top-k 32 before, chosen at T = 1 without a support): at T = 0.7 with the support it
    # cost diversity and gave the samples away more, most on kaggle. Without it / with top-k 32: built-in NN SSIM
    # 0.700-0.704 / 0.701-0.703, pairwise 0.565-0.568 / 0.568-0.570, critic 0.972-0.977 / 0.979-0.982; kaggle NN
    # 0.753-0.754 / 0.757-0.758, pairwise 0.690-0.693 / 0.709-0.712 (bound 0.704: met only without top-k), critic
    # 0.981-0.986 / 0.999 (two seeds each); two more trainings agree (RESULTS.md, "Top-k at T = 0.7"); the other
    # temperatures were measured with top-k 32 only. On class labels (the kaggle folders) 'depth' means 'position': a
    # support per label lets the critic win there (notebook 05, "Only codes seen there")
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_k=None, support="depth")
    description: str = ""

    def replace(self, **changes) -> Profile:
        return replace(self, **changes)


def _smoke() -> Profile:
    return Profile(
        name="smoke", image_size=64,
        vqvae=VQVAEConfig(hidden_channels=32, res_channels=16, n_res_blocks=1, codebook_size=64,
                          embedding_dim=16, recon_loss="l1+grad"),
        vqvae_train=TrainConfig(batch_size=16, steps=60, lr=2e-3, warmup_steps=10,
                                eval_every=30, checkpoint_every=30),
        eval_images=64, demo_image_size=32,
        demo_train=TrainConfig(batch_size=8, steps=40, lr=2e-3, warmup_steps=5, eval_every=0, checkpoint_every=0),
        prior=PixelCNNConfig(channels=16, n_layers=3, kernel_size=3),
        prior_train=TrainConfig(batch_size=16, steps=40, lr=3e-3, warmup_steps=5, eval_every=20,
                                checkpoint_every=20),
        description="CI check: tiny sizes, each notebook under 60 s on 2 CPU cores",
    )


def _class() -> Profile:
    return Profile(
        name="class", image_size=128,
        # trained on the L1 error of the pixels and of their differences, not the paper's squared error: at this
        # budget, built-in data, test SSIM 0.975 instead of 0.964 and the critic tells reconstructions from real
        # slices 0.655 of the time instead of 0.738 (kaggle: 0.974 / 0.963, critic 0.823 / 0.946); the samples of
        # the 4-minute prior score about as with MSE (T = 0.8: NN SSIM 0.695-0.704 over two VQ-VAEs, three priors
        # and two seeds, against 0.697-0.702; critic 0.97-0.99 either way; benchmarks/RESULTS.md, "A sharper decoder")
        vqvae=VQVAEConfig(recon_loss="l1+grad"),
        # small batches: on a CPU, more updates beat bigger batches (benchmarks: SSIM 0.959 after 2
        # minutes with batch 8, 0.940 with 16, 0.909 with 32); the 3-minute budget becomes a step count at the start
        vqvae_train=TrainConfig(batch_size=8, steps=20000, minutes=3.0, lr=2e-3, warmup_steps=100,
                                eval_every=500, checkpoint_every=500),
        eval_images=None,
        # 4 minutes on 2 CPU cores, so that VQ-VAE + prior take 7 (benchmarks/sample_quality.py measures the
        # samples); size search at 3 minutes (bits per test code 2.86 with C=32, 10 layers, batch 8,
        # lr 8e-3; 2.90 with C=48; 3.73 with C=32 at batch 16, lr 2e-3; 4.01 with C=64, 8 layers);
        # 16 samples of 32 x 32 codes take about 2 s with the fast sampler
        prior=PixelCNNConfig(channels=32, n_layers=10, kernel_size=5),
        # validated once, at the end: each validation (360 code maps) costs notebook 04 about 6 s of its 5 minutes
        prior_train=TrainConfig(batch_size=8, steps=20000, minutes=4.0, lr=8e-3, warmup_steps=100,
                                eval_every=0, checkpoint_every=500),
        description="a class on laptops: each notebook at most 5 minutes on a 2-core CPU",
    )


def _full() -> Profile:
    return Profile(
        name="full", image_size=128,
        vqvae=VQVAEConfig(hidden_channels=128, res_channels=64, n_res_blocks=3, recon_loss="l1+grad"),
        vqvae_train=TrainConfig(batch_size=64, steps=20000, lr=1e-3, warmup_steps=200,
                                eval_every=1000, checkpoint_every=1000),
        eval_images=None,
        prior=PixelCNNConfig(channels=128, n_layers=15, kernel_size=5),
        prior_train=TrainConfig(batch_size=64, steps=20000, lr=1e-3, warmup_steps=200, eval_every=1000,
                                checkpoint_every=1000),
        description="best quality; meant for a GPU",
    )


_PRESETS = {"smoke": _smoke, "class": _class, "full": _full}


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
