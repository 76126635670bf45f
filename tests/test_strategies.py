import pytest
import tensorflow as tf

from dcgan_dist.training import strategies
from dcgan_dist.errors import ConfigError


def test_strategies_on_this_host():
    assert strategies.make_strategy("default").num_replicas_in_sync == 1
    one = strategies.make_strategy("one_device")
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    # conftest split the CPU into 4 logical devices; mirroring over them is allowed.
    four = strategies.make_strategy("mirrored", cpu_replicas=4)
    assert isinstance(four, tf.distribute.MirroredStrategy)
    assert four.num_replicas_in_sync == 4
    assert strategies.is_chief(four) and strategies.task_info(four) == (None, None)


def test_bad_strategy_requests_say_what_to_do(monkeypatch):
    with pytest.raises(ConfigError, match="one of default, one_device"):
        strategies.make_strategy("horovod")
    with pytest.raises(ConfigError, match="at least 1"):
        strategies.make_strategy("mirrored", cpu_replicas=0)
    # TensorFlow is running with 4 CPU devices: 3 can no longer be configured.
    with pytest.raises(ConfigError, match="before TensorFlow starts"):
        strategies.make_strategy("mirrored", cpu_replicas=3)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="needs the TF_CONFIG"):
        strategies.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        strategies.make_strategy("multi_worker")
