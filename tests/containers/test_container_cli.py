"""`harness container ...` refuses bad input before any engine is asked."""

from tests.conftest import TINY


def test_recipe_outside_the_working_directory_is_refused(cli, write):
    recipe = write("elsewhere/tiny.yaml", TINY)
    result = cli("container", "run", recipe)
    assert result.exit_code == 2 and "outside the working directory" in result.output


def test_bad_override_fails_before_the_container_starts(cli, write):
    result = cli("container", "run", write("tiny.yaml", TINY), "train.stepz=3")
    assert result.exit_code == 2 and "unknown key 'stepz'" in result.output


def test_bad_limits_are_one_line_errors(cli):
    result = cli("container", "exec", "--gpus", "lots", "--", "true")
    assert result.exit_code == 2 and result.output.count("error:") == 1 and "container options" in result.output
    result = cli("container", "exec", "--memory", "huge", "--", "true")
    assert result.exit_code == 2 and "not a size" in result.output


def test_build_with_a_missing_ca_bundle_is_refused(cli, tmp_path):
    result = cli("container", "build", "--cpu", "--ca-bundle", tmp_path / "nope.pem")
    assert result.exit_code == 2 and "nope.pem" in result.output


def test_nvidia_base_goes_with_cuda_only(cli):
    result = cli("container", "build", "--cpu", "--nvidia-base")
    assert result.exit_code == 2 and "--nvidia-base goes with --cuda" in result.output
    result = cli("container", "build", "--cuda", "--nvidia-base", "--base", "debian:bookworm")
    assert result.exit_code == 2 and "without --base" in result.output


def test_vllm_is_a_cuda_flavour_on_the_debian_base_only(cli):
    result = cli("container", "build", "--vllm", "--cpu")
    assert result.exit_code == 2 and "--vllm and --cpu name two flavours" in result.output
    result = cli("container", "build", "--vllm", "--nvidia-base")
    assert result.exit_code == 2 and "--nvidia-base goes with --cuda" in result.output
    from harness.containers.context import FLAVORS

    assert (FLAVORS["vllm"].dockerfile, FLAVORS["vllm"].lock) == ("Dockerfile", "requirements-vllm.lock")
