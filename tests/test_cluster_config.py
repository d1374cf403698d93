"""cluster.yaml is a valid Ray cluster launcher config that starts a gateway on every node."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).parent.parent / "cluster.yaml"


def test_cluster_yaml_validates_against_rays_schema() -> None:
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    validate_config(prepare_config(config))
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert sum("inkstep gateway" in command for command in starts) == 2
    assert "INKSTEP_SECRET_KEY=" not in CLUSTER_YAML.read_text()
