"""What a run records, round by round, as the server sees it (the replies' metrics and the evaluation)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable


@dataclass(frozen=True)
class ClientRound:
    partition: int
    n: int
    speed: float
    dropped: bool
    samples: int
    sim_time: float
    coreset_size: int
    selection_cpu_s: float
    train_cpu_s: float


@dataclass
class RoundRecord:
    round: int
    round_time: float  # simulated: the slowest client that took part (0 when none did)
    sim_time: float  # simulated clock at the end of the round
    accuracy: float | None = None
    loss: float | None = None
    clients: list[ClientRound] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    """One method's run; `on_round(method, round)` is called after each round's evaluation."""

    method: str
    epoch_deadline: float = 0.0
    epochs: int = 0
    sizes: list[int] = field(default_factory=list)
    speeds: list[float] = field(default_factory=list)
    rounds: list[RoundRecord] = field(default_factory=list)
    on_round: Callable[[str, int], None] | None = None

    @property
    def round_deadline(self) -> float:
        return self.epochs * self.epoch_deadline

    @property
    def clock(self) -> float:
        return self.rounds[-1].sim_time if self.rounds else 0.0

    def add_round(self, server_round: int, clients: list[ClientRound]) -> None:
        round_time = max((c.sim_time for c in clients if not c.dropped), default=0.0)
        self.rounds.append(RoundRecord(server_round, round_time, self.clock + round_time, clients=clients))

    def set_evaluation(self, server_round: int, accuracy: float, loss: float) -> None:
        """Store the evaluation of the model after `server_round` (round 0: the initial model)."""
        if server_round == 0:
            self.rounds.insert(0, RoundRecord(0, 0.0, 0.0, accuracy, loss))
        else:
            record = next(r for r in self.rounds if r.round == server_round)
            record.accuracy, record.loss = accuracy, loss
        if self.on_round is not None:
            self.on_round(self.method, server_round)
