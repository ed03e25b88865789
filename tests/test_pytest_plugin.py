"""The pytest plugin, used the way another project would: a real pytest run on a test file."""

import subprocess
import sys
import textwrap


def test_plugin_fixtures_and_assertions(tmp_path):
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(r"""
        import pytest
        from sbibench.pytest_plugin import assert_calibrated, assert_posterior_close
        from sbibench.methods import get_method

        def test_exact_posterior_passes(sbibench_task):
            posterior = get_method("exact").fit(sbibench_task, 1, 0)
            x = sbibench_task.observation(1)
            assert_posterior_close(posterior.sample(1000, x, seed=0), sbibench_task, 1, max_c2st=0.6)
            assert_calibrated(posterior, sbibench_task, num_datasets=100, num_samples=50)

        def test_too_narrow_fails(sbibench_task):
            exact = get_method("exact").fit(sbibench_task, 1, 0)

            class Narrow:
                def sample(self, n, x, seed=None):
                    s = exact.sample(n, x, seed=seed)
                    return s.mean(0) + 0.3 * (s - s.mean(0))

            with pytest.raises(AssertionError, match="SBC rejects calibration"):
                assert_calibrated(Narrow(), sbibench_task, num_datasets=200, num_samples=50)
            with pytest.raises(AssertionError, match=r"C2ST .* \(noise sd 0\.\d+\) > 0.6 .*exact posterior scores"):
                x = sbibench_task.observation(1)
                assert_posterior_close(Narrow().sample(1000, x), sbibench_task, 1, max_c2st=0.6)
    """)
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_user.py"),
         "--sbibench-tasks", "normal_mean,normal_mean_variance"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_plugin_import_is_light():
    code = "import sys, sbibench.pytest_plugin; print(sorted(m for m in ('torch', 'pandas', 'ot', 'seaborn') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
