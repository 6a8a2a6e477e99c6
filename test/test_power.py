"""Tests for espnet_ros.power with fake sysfs trees, recorded tegrastats and a fake pynvml."""
import os
import stat
import sys
import types

import pytest

from espnet_ros import power
from espnet_ros.power import (
    CounterMeter,
    PowerMonitor,
    PowerReadError,
    SampledMeter,
    TegrastatsMeter,
    UnavailablePowerMeter,
    detect_power_source,
    parse_tegrastats,
    select_total_rail,
)


class FakeClock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


def write(root, relative, value):
    path = os.path.join(str(root), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("%s\n" % value)
    return path


@pytest.fixture
def no_pynvml(monkeypatch):
    """Make ``import pynvml`` fail so detection never reaches the real GPU of the test host."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


# ---------------------------------------------------------------- Jetson sysfs

HWMON = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"


def hwmon_rail(root, folder, channel, label, millivolts, milliamps):
    write(root, "%s/in%d_label" % (folder, channel), label)
    write(root, "%s/in%d_input" % (folder, channel), millivolts)
    return write(root, "%s/curr%d_input" % (folder, channel), milliamps)


def test_jetpack5_hwmon_uses_the_input_rail(tmp_path, no_pynvml):
    vdd_in = hwmon_rail(tmp_path, HWMON, 1, "VDD_IN", 5000, 1000)
    hwmon_rail(tmp_path, HWMON, 2, "VDD_CPU_GPU_CV", 5000, 200)
    hwmon_rail(tmp_path, HWMON, 3, "VDD_SOC", 5000, 300)
    write(tmp_path, HWMON + "/in7_label", "sum of shunt voltages")
    clock = FakeClock()
    meter = detect_power_source(str(tmp_path), clock=clock)
    assert meter.available and meter.name == "ina3221_hwmon:VDD_IN"
    assert meter.power_w() == pytest.approx(5.0)
    meter.start()
    clock.now += 2.0
    write(tmp_path, vdd_in, 1400)  # 7 W now
    assert meter.read() == pytest.approx(0.5 * (5.0 + 7.0) * 2.0)
    clock.now += 1.0
    assert meter.read() == pytest.approx(12.0 + 7.0)


def test_orin_agx_hwmon_sums_rails_and_skips_unconnected(tmp_path, no_pynvml):
    hwmon_rail(tmp_path, HWMON, 1, "VDD_GPU_SOC", 5000, 400)
    hwmon_rail(tmp_path, HWMON, 2, "VDD_CPU_CV", 5000, 80)
    hwmon_rail(tmp_path, HWMON, 3, "VIN_SYS_5V0", 5000, 600)
    second = "sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon4"
    hwmon_rail(tmp_path, second, 1, "NC", 0, 0)
    hwmon_rail(tmp_path, second, 2, "VDDQ_VDD2_1V8AO", 5000, 100)
    hwmon_rail(tmp_path, second, 3, "NC", 0, 0)
    meter = detect_power_source(str(tmp_path))
    assert meter.name == ("ina3221_hwmon:sum(VDDQ_VDD2_1V8AO,VDD_CPU_CV,VDD_GPU_SOC,"
                          "VIN_SYS_5V0)")
    assert meter.power_w() == pytest.approx(5.0 * (400 + 80 + 600 + 100) / 1000.0)


IIO = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"


def jetpack4_tree(root, input_mw=3345):
    write(root, IIO + "/rail_name_0", "POM_5V_IN")
    write(root, IIO + "/rail_name_1", "POM_5V_GPU")
    write(root, IIO + "/rail_name_2", "POM_5V_CPU")
    write(root, IIO + "/in_power1_input", 0)
    write(root, IIO + "/in_power2_input", 563)
    return write(root, IIO + "/in_power0_input", input_mw)


def test_jetpack4_iio_uses_pom_5v_in(tmp_path, no_pynvml):
    path = jetpack4_tree(tmp_path)
    clock = FakeClock()
    meter = detect_power_source(str(tmp_path), clock=clock)
    assert meter.name == "ina3221_iio:POM_5V_IN"
    assert meter.power_w() == pytest.approx(3.345)
    meter.start()
    write(tmp_path, path, 4345)
    clock.now += 4.0
    assert meter.read() == pytest.approx(0.5 * (3.345 + 4.345) * 4.0)


def test_jetpack4_xavier_iio_without_input_rail_sums(tmp_path, no_pynvml):
    write(tmp_path, IIO + "/rail_name_0", "GPU")
    write(tmp_path, IIO + "/in_power0_input", 1000)
    write(tmp_path, IIO + "/rail_name_1", "CPU")
    write(tmp_path, IIO + "/in_power1_input", 500)
    meter = detect_power_source(str(tmp_path))
    assert meter.name == "ina3221_iio:sum(CPU,GPU)"
    assert meter.power_w() == pytest.approx(1.5)


def test_hwmon_is_preferred_over_iio(tmp_path, no_pynvml):
    jetpack4_tree(tmp_path)
    hwmon_rail(tmp_path, HWMON, 1, "VDD_IN", 5000, 1000)
    assert detect_power_source(str(tmp_path)).name.startswith("ina3221_hwmon")
    only_iio = detect_power_source(str(tmp_path), sources=("ina3221_iio",))
    assert only_iio.name.startswith("ina3221_iio")


def test_unreadable_rail_is_reported(tmp_path, no_pynvml):
    hwmon_rail(tmp_path, HWMON, 1, "VDD_IN", "garbage", 1000)
    meter = detect_power_source(str(tmp_path), sources=("ina3221_hwmon",))
    assert not meter.available
    assert meter.reason.startswith("no power source found: ina3221_hwmon: cannot read rails")


def test_rail_read_failure_after_detection_raises(tmp_path, no_pynvml):
    path = jetpack4_tree(tmp_path)
    meter = detect_power_source(str(tmp_path))
    os.remove(path)
    with pytest.raises(PowerReadError, match="ina3221_iio"):
        meter.power_w()


# ---------------------------------------------------------------- tegrastats

JP4_NANO = ("RAM 1500/3956MB (lfb 1x4MB) SWAP 0/1978MB (cached 0MB) CPU [10%@1479,2%@1479,"
            "off,off] EMC_FREQ 0% GR3D_FREQ 0% PLL@25C CPU@27.5C PMIC@100C GPU@26C AO@33C "
            "thermal@26.75C POM_5V_IN 3345/3345 POM_5V_GPU 0/0 POM_5V_CPU 563/563")
JP4_TX2 = ("RAM 2200/7860MB (lfb 1x4MB) CPU [1%@345,off,off,0%@345,0%@345,0%@345] "
           "EMC_FREQ 0%@1600 GR3D_FREQ 0%@114 APE 150 VDD_IN 3556/3556 VDD_CPU 307/307 "
           "VDD_GPU 153/153 VDD_SOC 537/537 VDD_WIFI 0/0 VDD_DDR 460/460")
JP4_XAVIER = ("RAM 2416/15692MB (lfb 2908x4MB) SWAP 0/7846MB (cached 0MB) CPU [1%@1190,"
              "0%@1190] EMC_FREQ 0% GR3D_FREQ 0% AO@35C GPU@35.5C Tdiode@37.75C PMIC@100C "
              "AUX@34.5C CPU@36C thermal@35.4C Tboard@34C GPU 0/0 CPU 155/155 SOC 1085/1085 "
              "CV 0/0 VDDRQ 155/155 SYS5V 1849/1849")
JP5_NX = ("RAM 1810/7620MB (lfb 1x4MB) SWAP 0/3810MB (cached 0MB) CPU [2%@1190,1%@1190] "
          "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305] VIC_FREQ 115 APE 200 CV0@-256C CPU@43.281C "
          "GPU@-256C tj@43.281C VDD_IN 5324mW/4000mW VDD_CPU_GPU_CV 1080mW/1080mW "
          "VDD_SOC 1438mW/1438mW")
ORIN_AGX = ("11-21-2024 10:00:00 RAM 4200/30536MB (lfb 6958x4MB) SWAP 0/15268MB (cached 0MB) "
            "CPU [0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 "
            "CPU@45C tboard@33C SOC2@41.5C Tdiode@36C SOC0@42C CV1@41.8C GPU@40C "
            "VDD_GPU_SOC 2000mW/2000mW VDD_CPU_CV 400mW/400mW VIN_SYS_5V0 3000mW/3000mW "
            "VDDQ_VDD2_1V8AO 500mW/500mW")


@pytest.mark.parametrize("line, rails, total", [
    (JP4_NANO, {"POM_5V_IN": 3345, "POM_5V_GPU": 0, "POM_5V_CPU": 563}, ("POM_5V_IN", 3345)),
    (JP4_TX2, {"VDD_IN": 3556, "VDD_CPU": 307, "VDD_GPU": 153, "VDD_SOC": 537, "VDD_WIFI": 0,
               "VDD_DDR": 460}, ("VDD_IN", 3556)),
    (JP4_XAVIER, {"GPU": 0, "CPU": 155, "SOC": 1085, "CV": 0, "VDDRQ": 155, "SYS5V": 1849},
     ("sum(CPU,CV,GPU,SOC,SYS5V,VDDRQ)", 3244)),
    (JP5_NX, {"VDD_IN": 5324, "VDD_CPU_GPU_CV": 1080, "VDD_SOC": 1438}, ("VDD_IN", 5324)),
    (ORIN_AGX, {"VDD_GPU_SOC": 2000, "VDD_CPU_CV": 400, "VIN_SYS_5V0": 3000,
                "VDDQ_VDD2_1V8AO": 500},
     ("sum(VDDQ_VDD2_1V8AO,VDD_CPU_CV,VDD_GPU_SOC,VIN_SYS_5V0)", 5900)),
])
def test_parse_tegrastats(line, rails, total):
    parsed = parse_tegrastats(line)
    assert parsed == rails  # RAM/SWAP "a/bMB" and temperatures are not rails
    assert select_total_rail(parsed) == total


def test_tegrastats_line_without_rails():
    assert parse_tegrastats("RAM 1500/3956MB (lfb 1x4MB) SWAP 0/1978MB (cached 0MB)") == {}
    with pytest.raises(ValueError):
        select_total_rail({})


def test_tegrastats_meter_integrates_fed_lines():
    clock = FakeClock()
    meter = TegrastatsMeter(clock=clock)
    with pytest.raises(PowerReadError, match="no line"):
        meter.start()
    assert not meter.feed_line("RAM 1500/3956MB")
    assert meter.feed_line(JP5_NX)
    assert meter.name == "tegrastats:VDD_IN"
    meter.start()
    clock.now += 1.0
    meter.feed_line(JP5_NX.replace("VDD_IN 5324mW", "VDD_IN 7324mW"))
    assert meter.read() == pytest.approx(0.5 * (5.324 + 7.324))


def fake_tegrastats(root, line):
    path = write(root, "usr/bin/tegrastats",
                 "#!/bin/sh\nwhile true; do echo '%s'; sleep 0.02; done" % line)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


def test_tegrastats_process_is_spawned_and_stopped(tmp_path, no_pynvml):
    fake_tegrastats(tmp_path, JP4_NANO)
    meter = detect_power_source(str(tmp_path))
    assert isinstance(meter, TegrastatsMeter)
    assert meter.command[1:] == ["--interval", "100"]
    try:
        meter.start()
        assert meter.name == "tegrastats:POM_5V_IN"
        assert meter.power_w() == pytest.approx(3.345)
        process = meter.tegrastats.process
    finally:
        meter.close()
    assert process.poll() is not None


def test_tegrastats_that_prints_no_power_fails_start(tmp_path):
    meter = TegrastatsMeter([fake_tegrastats(tmp_path, "RAM 1/2MB")], first_line_timeout_s=0.2)
    with pytest.raises(PowerReadError, match="no power line"):
        meter.start()
    assert meter.tegrastats.process is None


def test_tegrastats_that_cannot_run(tmp_path):
    meter = TegrastatsMeter([str(tmp_path / "missing")])
    with pytest.raises(PowerReadError, match="cannot run"):
        meter.start()


# ---------------------------------------------------------------- NVML


class NVMLError(Exception):
    pass


def fake_pynvml(energy_mj=None, power_mw=None, init_error=None, devices=1):
    """A pynvml stand-in replaying ``energy_mj``/``power_mw`` lists (None: not supported)."""
    module = types.ModuleType("pynvml")
    module.NVMLError = NVMLError
    module.calls = []

    def init():
        if init_error:
            raise NVMLError(init_error)
        module.calls.append("init")

    def handle(index):
        if index >= devices:
            raise NVMLError("Invalid Argument")
        return "handle%d" % index

    def replay(values):
        def read(handle):
            assert handle.startswith("handle")
            if values is None:
                raise NVMLError("Not Supported")
            return values.pop(0) if len(values) > 1 else values[0]
        return read

    module.nvmlInit = init
    module.nvmlShutdown = lambda: module.calls.append("shutdown")
    module.nvmlDeviceGetHandleByIndex = handle
    module.nvmlDeviceGetTotalEnergyConsumption = replay(energy_mj)
    module.nvmlDeviceGetPowerUsage = replay(power_mw)
    return module


def test_nvml_prefers_the_energy_counter(tmp_path, monkeypatch):
    nvml = fake_pynvml(energy_mj=[1000, 1000, 6000, 8500], power_mw=[99000])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    meter = detect_power_source(str(tmp_path))
    assert meter.name == "nvml:gpu0 (energy counter)"
    meter.start()
    assert meter.read() == pytest.approx(5.0)
    assert meter.read() == pytest.approx(7.5)
    meter.close()
    assert nvml.calls == ["init", "shutdown"]


def test_nvml_falls_back_to_power_samples(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(power_mw=[100000, 100000, 300000]))
    clock = FakeClock()
    meter = detect_power_source(str(tmp_path), clock=clock)
    assert meter.name == "nvml:gpu0 (power samples)"
    meter.start()
    clock.now += 0.5
    assert meter.read() == pytest.approx(0.5 * (100.0 + 300.0) * 0.5)


@pytest.mark.parametrize("nvml, needle", [
    (fake_pynvml(init_error="Driver Not Loaded"), "nvml: init failed (Driver Not Loaded)"),
    (fake_pynvml(power_mw=[1], devices=0), "nvml: no GPU 0 (Invalid Argument)"),
    (fake_pynvml(), "nvml: GPU 0 reports no power"),
])
def test_nvml_failures_are_reasons(tmp_path, monkeypatch, nvml, needle):
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    meter = detect_power_source(str(tmp_path), sources=("nvml",))
    assert not meter.available and needle in meter.reason


def test_nvml_device_index(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(energy_mj=[5], devices=2))
    meter = detect_power_source(str(tmp_path), sources=("nvml",), nvml_device_index=1)
    assert meter.name == "nvml:gpu1 (energy counter)"


def test_missing_pynvml_is_a_reason(tmp_path, no_pynvml):
    meter = detect_power_source(str(tmp_path), sources=("nvml",))
    assert meter.reason == "no power source found: nvml: pynvml (nvidia-ml-py) not installed"


# ---------------------------------------------------------------- RAPL

RANGE_UJ = 262143328850


def rapl_zone(root, zone, name, energy_uj, max_range=RANGE_UJ):
    base = "sys/class/powercap/%s" % zone
    write(root, base + "/name", name)
    write(root, base + "/max_energy_range_uj", max_range)
    return write(root, base + "/energy_uj", energy_uj)


def test_rapl_sums_packages_and_handles_wrap_around(tmp_path, no_pynvml):
    pkg0 = rapl_zone(tmp_path, "intel-rapl:0", "package-0", RANGE_UJ - 1000000)
    pkg1 = rapl_zone(tmp_path, "intel-rapl:1", "package-1", 10000000)
    rapl_zone(tmp_path, "intel-rapl:0:0", "core", 1)  # inside package-0, never added
    rapl_zone(tmp_path, "intel-rapl:2", "psys", 1)  # covers the packages, never added
    meter = detect_power_source(str(tmp_path))
    assert meter.name == "rapl:package-0,package-1"
    meter.start()
    write(tmp_path, pkg0, 4000000)  # wrapped: 1 J before the wrap, 4 J after it
    write(tmp_path, pkg1, 12000000)
    assert meter.read() == pytest.approx(5.0 + 2.0)
    write(tmp_path, pkg0, 4500000)
    assert meter.read() == pytest.approx(7.5)


def test_rapl_without_packages_uses_every_top_zone(tmp_path, no_pynvml):
    path = rapl_zone(tmp_path, "intel-rapl:0", "psys", 0, max_range=1000000)
    meter = detect_power_source(str(tmp_path))
    assert meter.name == "rapl:psys"
    meter.start()
    write(tmp_path, path, 999999)
    write(tmp_path, path, 250000)
    assert meter.read() == pytest.approx(0.25)


def test_rapl_permission_denied(tmp_path, monkeypatch, no_pynvml):
    rapl_zone(tmp_path, "intel-rapl:0", "package-0", 5)
    real_read = power.rapl.read_text

    def deny_energy(path):
        if path.endswith("energy_uj") and "max" not in os.path.basename(path):
            raise PermissionError(13, "Permission denied", path)
        return real_read(path)

    monkeypatch.setattr(power.rapl, "read_text", deny_energy)
    meter = detect_power_source(str(tmp_path), sources=("rapl",))
    assert not meter.available
    assert "rapl: cannot read energy_uj (root-only since Linux 5.10)" in meter.reason


# ---------------------------------------------------------------- detection


def test_nothing_found_lists_every_reason(tmp_path, no_pynvml):
    meter = detect_power_source(str(tmp_path))
    assert isinstance(meter, UnavailablePowerMeter) and not meter.available
    assert meter.reason == (
        "no power source found: ina3221_hwmon: no INA3221 hwmon rails; "
        "ina3221_iio: no INA3221 iio rails; tegrastats: not installed; "
        "nvml: pynvml (nvidia-ml-py) not installed; rapl: no powercap intel-rapl zones")
    with pytest.raises(PowerReadError):
        meter.read()


def test_unknown_source_name():
    with pytest.raises(ValueError, match="unknown power source"):
        detect_power_source("/", sources=("watt_meter",))


def test_this_machine_reports_unavailable_honestly():
    meter = detect_power_source("/")
    try:
        if meter.available:
            pytest.skip("this machine has a power source: %s" % meter.name)
        assert meter.reason.startswith("no power source found: ")
        summary = PowerMonitor(meter).summary()
        assert not summary.available and summary.average_w is None
        assert summary.reason == meter.reason
    finally:
        meter.close()


# ---------------------------------------------------------------- monitor


class ScriptedCounter(CounterMeter):
    """Energy counter in joules that the test sets directly."""

    def __init__(self):
        super().__init__("scripted", 1.0, [None])
        self.value = 0.0
        self.fail = None

    def _read_counters(self):
        if self.fail:
            raise PowerReadError(self.fail)
        return [self.value]


def test_monitor_average_watts_and_joules_per_frame():
    clock, meter = FakeClock(), ScriptedCounter()
    monitor = PowerMonitor(meter, window_s=10.0, min_sample_interval_s=0.0, clock=clock)
    monitor.start()
    for _ in range(20):  # 20 frames over 4 s at a constant 10 W
        clock.now += 0.2
        meter.value += 2.0
        monitor.frame_done()
    summary = monitor.summary()
    assert summary.available and summary.source == "scripted"
    assert summary.average_w == pytest.approx(10.0)
    assert summary.joules_per_frame == pytest.approx(2.0)
    assert summary.frames == 20 and summary.window_s == pytest.approx(4.0)
    assert summary.reason == ""


def test_monitor_window_forgets_old_samples():
    clock, meter = FakeClock(), ScriptedCounter()
    monitor = PowerMonitor(meter, window_s=2.0, min_sample_interval_s=0.0, clock=clock)
    monitor.start()
    for step in range(10):  # 10 W for 5 s, then 40 W for 5 s, one frame every 0.5 s
        clock.now += 0.5
        meter.value += 5.0 if step < 5 else 20.0
        monitor.frame_done()
    for _ in range(5):
        clock.now += 0.5
        meter.value += 20.0
        monitor.frame_done()
    summary = monitor.summary()
    assert summary.window_s == pytest.approx(2.0)
    assert summary.average_w == pytest.approx(40.0)
    assert summary.joules_per_frame == pytest.approx(20.0)


def test_monitor_throttles_meter_reads():
    clock, meter = FakeClock(), ScriptedCounter()
    reads = []
    original = meter.read
    meter.read = lambda: reads.append(clock.now) or original()
    monitor = PowerMonitor(meter, min_sample_interval_s=0.1, clock=clock)
    monitor.start()
    for _ in range(10):
        clock.now += 0.02
        monitor.frame_done()
    assert len(reads) == 1  # only the frame 0.1 s after start was sampled
    monitor.summary()
    assert len(reads) == 2


def test_monitor_collecting_and_idle_reasons():
    clock, meter = FakeClock(), ScriptedCounter()
    monitor = PowerMonitor(meter, clock=clock)
    assert monitor.summary().reason == "monitor not started"
    monitor.start()
    first = monitor.summary()
    assert first.available and first.average_w is None and first.reason == "collecting samples"
    clock.now += 2.0
    meter.value += 6.0
    idle = monitor.summary()
    assert idle.average_w == pytest.approx(3.0) and idle.joules_per_frame is None
    assert idle.reason == "no frames processed in the last 2.0 s"


def test_monitor_read_failure_becomes_unavailable():
    clock, meter = FakeClock(), ScriptedCounter()
    monitor = PowerMonitor(meter, clock=clock)
    monitor.start()
    meter.fail = "sensor vanished"
    clock.now += 1.0
    summary = monitor.summary()
    assert not summary.available
    assert summary.reason == "scripted: read failed: sensor vanished"


def test_monitor_start_failure_becomes_unavailable():
    meter = TegrastatsMeter()
    summary = PowerMonitor(meter).summary()
    assert summary.reason == "monitor not started"
    monitor = PowerMonitor(meter)
    monitor.start()
    assert not monitor.summary().available
    assert "start failed: tegrastats: no line" in monitor.summary().reason


def test_monitor_with_unavailable_meter():
    monitor = PowerMonitor(UnavailablePowerMeter("no power source found: test"))
    monitor.start()
    monitor.frame_done()
    summary = monitor.summary()
    assert summary == power.PowerSummary(False, "unavailable", None, None, 0, 0.0,
                                         "no power source found: test")


def test_sampled_meter_read_before_start_starts_it():
    class Constant(SampledMeter):
        def power_w(self):
            return 2.0

    clock = FakeClock()
    meter = Constant("constant", clock)
    assert meter.read() == 0.0
    clock.now += 3.0
    assert meter.read() == pytest.approx(6.0)
