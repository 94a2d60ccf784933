"""One run's settings, checked once; both Flower apps are built from it (it must pickle for Ray)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fedcore.coreset import MAX_CLASS
from fedcore.data import DatasetSpec, FederatedData
from fedcore.models import Model
from fedcore.schedule import METHODS
from fedcore.training import SGD

MODELS = ("auto", "softmax", "mlp")


@dataclass(frozen=True)
class RunConfig:
    dataset: DatasetSpec = field(default_factory=lambda: DatasetSpec("synthetic", 1.0, 1.0))
    clients: int = 30
    per_round: int = 10
    rounds: int = 100
    epochs: int = 10
    batch_size: int = 8
    lr: float = 0.01
    mu: float = 1.0  # FedProx's proximal weight (the authors' value for MNIST and synthetic)
    stragglers: float = 0.3  # fraction of clients that cannot finish an epoch within the deadline
    methods: tuple[str, ...] = METHODS
    seed: int = 0
    model: str = "auto"  # auto: softmax regression on synthetic (as the authors), an MLP on digits and mnist1d
    hidden: int = 64
    max_class: int = MAX_CLASS
    charge_selection: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.clients >= 2, f"--clients must be >= 2, got {self.clients}"),
            (1 <= self.per_round <= self.clients, f"--per-round must be 1..{self.clients}, got {self.per_round}"),
            (self.rounds >= 1, f"--rounds must be >= 1, got {self.rounds}"),
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.mu >= 0, f"--mu must be >= 0, got {self.mu}"),
            (0 <= self.stragglers < 1, f"--stragglers must be in [0, 1), got {self.stragglers}"),
            (bool(self.methods), "--methods needs at least one method"),
            (self.model in MODELS, f"--model must be one of {', '.join(MODELS)}, got {self.model!r}"),
            (self.hidden >= 1, f"--hidden must be >= 1, got {self.hidden}"),
            (self.max_class >= 2, f"--max-class must be >= 2, got {self.max_class}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r} in --methods (choose from {', '.join(METHODS)})")

    def build_model(self, data: FederatedData) -> Model:
        mlp = self.model == "mlp" or (self.model == "auto" and self.dataset.name != "synthetic")
        return Model(data.num_features, data.num_classes, self.hidden if mlp else 0)

    def sgd(self, proximal: bool) -> SGD:
        return SGD(self.lr, self.batch_size, self.mu if proximal else 0.0)
