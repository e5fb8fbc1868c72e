"""Training scores with a judge server: a tiny PaCo-GRPO run whose consistency reward goes
through a real HTTP judge server on a free loopback port gives the rewards of the same run
with the judge loaded in-process."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest

from paco_core.config import config_from_dict
from paco_core.errors import ConfigError, JudgeError
from paco_core.reward import open_judge
from paco_core.reward.judge_server import JudgeHTTPServer
from paco_core.rl.config import TrainConfig
from paco_core.rl.trainer import GrpoTrainer
from paco_core.run_folder import RunFolder

FIXTURES = Path(__file__).parent / "fixtures" / "rl"


def judged_config(model_path: Path, output_dir: Path, **judge) -> TrainConfig:
    """One iteration on the tiny FLUX, rewarded by the consistency judge only."""
    return config_from_dict(
        TrainConfig,
        {
            "model": {"kind": "flux", "path": str(model_path), "device": "cpu"},
            "lora": {"rank": 4, "alpha": 8},
            "sampling": {
                "num_steps": 2,
                "noise_steps": [0, 1],
                "train_resolution": 64,
                "eval_resolution": 64,
                "group_size": 2,
                "batch_size": 2,
                "prompts_per_iteration": 1,
                "max_sequence_length": 16,
            },
            "data": {"train_file": str(FIXTURES / "sets.jsonl"), "num_eval_prompts": 1},
            "rewards": {"rewards": [{"name": "consistency"}], "aggregation": "weighted_sum", **judge},
            "ema": {"use_ema": False},
            "num_iterations": 1,
            "output_dir": str(output_dir),
            "checkpoint_every": 1,
            "eval_every": 0,
        },
    )


def test_training_scores_through_a_judge_server(tiny_models, tmp_path):
    local = judged_config(tiny_models["flux"], tmp_path / "local", judge_path=str(tiny_models["judge"]))
    GrpoTrainer(local).train()
    expected = RunFolder(tmp_path / "local").read_metrics()[-1]

    judge = open_judge(tiny_models["judge"], cache_size=0)
    vocab_size = int(judge.model.config.text_config.vocab_size)  # random judge: Yes/No may rank anywhere
    served = []
    score_on_server = judge.first_token_logprobs

    def counted(pairs):
        served.extend(pairs)
        return score_on_server(pairs)

    judge.first_token_logprobs = counted
    with JudgeHTTPServer(judge, model_name="tiny-judge", max_logprobs=vocab_size) as server:
        remote = judged_config(
            tiny_models["flux"],
            tmp_path / "remote",
            judge_url=server.url,
            judge_server_model="tiny-judge",
            judge_top_logprobs=vocab_size,
        )
        result = GrpoTrainer(remote).train()
    assert result.state == "finished"
    got = RunFolder(tmp_path / "remote").read_metrics()[-1]
    assert len(served) == 2 * 6  # two 2x2 grids, six panel pairs each
    assert got["rewards/consistency/invalid"] == 0 and math.isfinite(got["rewards/consistency/mean"])
    assert got["rewards/consistency/mean"] == pytest.approx(expected["rewards/consistency/mean"], abs=1e-4)


def test_a_stopped_judge_server_fails_before_any_model_loads(tiny_models, tmp_path):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    trainer = GrpoTrainer(judged_config(tiny_models["flux"], tmp_path, judge_url=url))
    with pytest.raises(JudgeError, match=rf"judge server {url}/v1/models did not answer"):
        trainer.check_config()


def test_judge_server_settings_are_checked(tiny_models, tmp_path):
    with pytest.raises(ConfigError, match="`rewards.judge_url` should start with http:// or https://"):
        judged_config(tiny_models["flux"], tmp_path, judge_url="127.0.0.1:8000")
    with pytest.raises(ConfigError, match="are both set: keep the one judge"):
        judged_config(tiny_models["flux"], tmp_path, judge_url="http://127.0.0.1:8000", judge_path="judge")
    with pytest.raises(ConfigError, match="is a server URL .*put it in `rewards.judge_url`"):
        judged_config(tiny_models["flux"], tmp_path, judge_path="https://judge.example:8000")
