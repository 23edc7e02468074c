"""The configuration: the committed sample is what the generator makes."""
import pathlib
import subprocess
import sys

import pytest
from oslo_config import cfg

from agent import conf

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_committed_sample_matches_generator(tmp_path):
    out = tmp_path / "drover.conf.sample"
    gen = pathlib.Path(sys.executable).parent / "oslo-config-generator"
    subprocess.run([str(gen), "--namespace", "drover", "--wrap-width", "79",
                    "--output-file", str(out)], check=True)
    committed = (ROOT / "etc" / "drover.conf.sample").read_text()
    assert out.read_text() == committed, (
        "etc/drover.conf.sample is stale: run "
        "'oslo-config-generator --config-file "
        "etc/oslo-config-generator/drover.conf'")


def test_every_option_has_help():
    for group, opts in conf.list_opts():
        for opt in opts:
            assert opt.help, f"[{group}] {opt.name} has no help text"


def test_config_file_overrides_defaults(tmp_path):
    path = tmp_path / "drover.conf"
    path.write_text("[libvirt]\nvirt_type = qemu\n[compute]\n"
                    "resize_confirm_window = 30\n")
    c = cfg.ConfigOpts()
    conf.register_opts(c)
    c(args=[f"--config-file={path}"], project="drover",
      default_config_files=[])
    assert c.libvirt.virt_type == "qemu"
    assert c.compute.resize_confirm_window == 30
    assert c.compute.allow_resize_to_same_host is False


def test_bad_value_is_refused(tmp_path):
    path = tmp_path / "drover.conf"
    path.write_text("[libvirt]\nvirt_type = xen\n")
    c = cfg.ConfigOpts()
    conf.register_opts(c)
    c(args=[f"--config-file={path}"], project="drover",
      default_config_files=[])
    with pytest.raises(cfg.ConfigFileValueError, match="xen"):
        c.libvirt.virt_type  # noqa: B018 (reading the option validates it)


def test_load_names_a_bad_value_in_one_line(tmp_path):
    from agent.common.errors import InvalidInput
    path = tmp_path / "drover.conf"
    path.write_text("[controller]\npoll_interval = soon\n")
    c = cfg.ConfigOpts()
    conf.register_opts(c)
    with pytest.raises(InvalidInput) as err:
        conf.load([f"--config-file={path}"], conf=c, default_config_files=[])
    assert str(err.value).startswith(
        "configuration: [controller] poll_interval: ")
    assert "\n" not in str(err.value)


def test_load_refuses_a_missing_file_in_one_line(tmp_path):
    from agent.common.errors import InvalidInput
    c = cfg.ConfigOpts()
    conf.register_opts(c)
    with pytest.raises(InvalidInput, match="configuration: .*nowhere"):
        conf.load([f"--config-file={tmp_path}/nowhere.conf"], conf=c,
                  default_config_files=[])


def test_controller_database_url_is_a_deprecated_alias(tmp_path):
    from oslo_config import cfg

    from agent.conf import load, register_opts
    path = tmp_path / "old.conf"
    path.write_text("[controller]\ndatabase_url = sqlite:////srv/old.db\n")
    conf = cfg.ConfigOpts()
    register_opts(conf)
    load([f"--config-file={path}"], conf=conf)
    assert conf.database.connection == "sqlite:////srv/old.db"
