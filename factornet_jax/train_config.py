"""TrainConfig: the one config object of a training run (the CLI flags are a view of it)."""
import dataclasses
from dataclasses import dataclass

from factornet_jax.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of `train run`; saved as config.json["train"] in the model dir."""
    inputs: tuple                      # -i: cell stores (or built cell folders) to train on
    output: str = "model"              # -o / -oc: the model directory
    valid_inputs: tuple = ()           # -vi: cell stores for validation (default: the -i stores)
    valid_chroms: tuple = ("chr11",)   # -v: validation chromosomes, never trained on
    test_chroms: tuple = ("chr1", "chr8", "chr21")  # -t: held-out chromosomes, never used
    epochs: int = 100                  # -e: maximum number of epochs
    patience: int = 20                 # -ep: stop after patience + 1 epochs without a lower valid
                                       #   loss (Keras 1 EarlyStopping)
    learning_rate: float = 0.001       # -lr: Adam learning rate
    negatives: int = 1                 # -n: fresh negatives per positive per epoch (onePeak modes)
    seq_len: int = 1000                # -L: window length the model sees, centred on the 200-bp bin
    kernel_width: int = 26             # -w: convolution kernel width (pool = w // 2)
    kernels: int = 32                  # -k: number of convolution kernels
    recurrent: int = 32                # -r: BiLSTM units each way; 0 none; < 0 global max-pool
    dense: int = 128                   # -d: dense layer units
    dropout: float = 0.5               # -p: dropout rate after the BiLSTM and before the output
    lstm_dropout: float = 0.1          # --lstm-dropout: BiLSTM input and recurrent dropout (Keras 1
                                       #   dropout_W = dropout_U = 0.1 in FactorNet)
    lstm_cell: str = "standard"        # --lstm-cell: "standard" (sigmoid gates, cuDNN-able) or
                                       #   "keras1" (FactorNet's hard_sigmoid gates)
    signal_transform: str = "none"     # --signal-transform: "none" (FactorNet) or "log1p", applied
                                       #   inside the model, so prediction does the same
    signal_normalization: str = "none"  # --signal-normalization: "none" (FactorNet) or "quantile"
                                       #   (each cell's tracks quantile-matched to the training
                                       #   cells' mean levels at read time; drift.py)
    shift: int = 20                    # --shift: multi-task windows move by [-shift, +shift] bp each
                                       #   time they are read, training and validation (FactorNet 20)
    seed: int = 420                    # -s: drives sampling, initialisation and dropout
    factor: str | None = None          # -f: the TF of a single-task (onePeak) model; None = multiTask
    meta: bool = False                 # -m: add the cell line's meta features
    gencode: bool = False              # -g: add the six GENCODE bin flags
    motif: bool = False                # -mo: put the TF's canonical motif in kernels 0 and 1
    motif_db: str | None = None        # --motif-db: MEME file searched for -mo motifs
    motif_extra: tuple[str, ...] = ()  # --motif-extra: more motifs (e.g. known co-factors) for
                                       #   the kernel pairs after the TFs' (not FactorNet; needs -mo)
    batch_size: int = 100              # global batch (split over all devices), FactorNet used 100
    loader_threads: int = 1            # background threads assembling batches (0: none)
    loader_processes: int = 0          # worker processes assembling batches instead (0: threads)
    prefetch: int = 4                  # batches prepared ahead of the device
    max_steps_per_epoch: int = 0       # cap on steps per epoch (0: a full pass); for quick runs
    compute_dtype: str = "float32"     # "float32" or "bfloat16" (mixed precision, float32 params)
    lstm_backend: str = "scan"         # --lstm: BiLSTM as a lax.scan (any device) or "cudnn"
    stores_dir: str = "stores"         # where built stores of cell folders named by -i are found

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, "-e/--epochs must be at least 1"),
            (self.patience >= 0, "-ep/--patience must be 0 or more"),
            (self.learning_rate > 0, "-lr/--learningrate must be positive"),
            (self.negatives >= 1, "-n/--negatives must be at least 1"),
            (self.seq_len >= 1, "-L/--seqlen must be positive"),
            (self.kernel_width >= 2, "-w/--motifwidth must be at least 2"),
            (self.seq_len >= self.kernel_width, f"-L/--seqlen {self.seq_len} must not be smaller "
                                                f"than -w/--motifwidth {self.kernel_width}"),
            (self.kernels >= 1, "-k/--kernels must be at least 1"),
            (self.dense >= 1, "-d/--dense must be at least 1"),
            (0.0 <= self.dropout < 1.0, "-p/--dropout must be in [0, 1)"),
            (0.0 <= self.lstm_dropout < 1.0, "--lstm-dropout must be in [0, 1)"),
            (self.shift >= 0, "--shift must be 0 or more"),
            (self.lstm_cell in ("standard", "keras1"), "--lstm-cell must be standard or keras1"),
            (self.signal_transform in ("none", "log1p"), "--signal-transform must be none or log1p"),
            (self.signal_normalization in ("none", "quantile"),
             "--signal-normalization must be none or quantile"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.loader_threads >= 0, "--loader-threads must be 0 or more"),
            (self.loader_processes >= 0, "--loader-processes must be 0 or more"),
            (self.max_steps_per_epoch >= 0, "--max-steps must be >= 0"),
            (self.compute_dtype in ("float32", "bfloat16"), "--dtype must be float32 or bfloat16"),
            (self.lstm_backend in ("scan", "cudnn"), "--lstm must be scan or cudnn"),
            (bool(self.inputs), "-i/--inputdirs needs at least one cell store"),
            (self.motif or not self.motif_extra, "--motif-extra needs -mo"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        overlap = set(self.valid_chroms) & set(self.test_chroms)
        if overlap:
            raise ConfigError(f"-v and -t share {', '.join(sorted(overlap))}; a chromosome is "
                              "either validation or test")

    @property
    def model_type(self):
        """FactorNet's name for the mode: multiTask, onePeak, meta, GENCODE or metaGENCODE."""
        if self.factor is None:
            return "multiTask"
        return {(False, False): "onePeak", (True, False): "meta", (False, True): "GENCODE",
                (True, True): "metaGENCODE"}[(self.meta, self.gencode)]

    def to_dict(self):
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, data):
        """The config of a to_dict() dict (as saved in config.json["train"], which also holds
        the derived "model_type"); a setting we do not know (a newer format) is an error naming
        it, as in ModelConfig.from_dict."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields - {"model_type"})
        if unknown:
            raise ConfigError(f"unknown train config field(s): {', '.join(unknown)} (written by a "
                              "newer factornet-jax?)")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in fields})

    def run_identity(self):
        """The settings that must match to resume a run (not where it writes or how it loads)."""
        data = self.to_dict()
        for key in ("output", "loader_threads", "loader_processes", "prefetch", "stores_dir",
                    "lstm_backend"):
            data.pop(key)
        return data
