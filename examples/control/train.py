"""Tune a PID controller on a simulated plant (numpy only, no machine learning, well under a second).

The plant is a lightly damped mass-spring system behind an actuator that saturates and a measurement delay; the
controller tracks a sequence of setpoint steps while a load disturbance hits half-way and the sensor is noisy. The
metric is `cost`: the time-weighted absolute tracking error plus a penalty on control effort and actuator chatter,
lower is better. It is written to `metrics.json` in the working directory (with the parts it is made of). An
unstable controller makes the run fail, as a diverging training would.

    bilevel run --workload examples/control/train.py --metric cost --fixed SEED,STEPS --levels 1
"""

import json

import numpy as np

# --- hyperparameters ---
KP = 1.0                    # float [0.01, 50.0] log: proportional gain
KI = 0.1                    # float [0.0, 20.0]: integral gain
KD = 0.05                   # float [0.0, 5.0]: derivative gain
DERIVATIVE_FILTER = 0.05    # float [0.001, 1.0] log: time constant of the derivative filter, seconds
ANTI_WINDUP = "none"        # choice [none, clamp, back_calculation]: what the integrator does while saturated
SETPOINT_WEIGHT = 1.0       # float [0.0, 1.0]: share of the setpoint in the proportional term (2-DOF PID)
FEEDFORWARD = False         # bool: add the static gain's inverse of the setpoint to the command
STEPS = 3000                # int [500, 20000]: simulated time steps of 5 ms (the budget)
SEED = 0                    # int [0, 1000]: noise and disturbance seed
# --- end hyperparameters ---

DT = 0.005  # seconds per step
MASS, DAMPING, STIFFNESS = 1.0, 0.4, 4.0  # the plant: x'' = (u + load - DAMPING x' - STIFFNESS x) / MASS
U_MAX = 12.0  # actuator saturation
DELAY_STEPS = 6  # 30 ms measurement delay
NOISE_SD = 0.002  # sensor noise
EFFORT_WEIGHT, CHATTER_WEIGHT = 0.002, 0.3


def main() -> None:
    rng = np.random.default_rng(SEED)
    setpoints = rng.uniform(-1.0, 1.0, size=4)  # the reference: four steps over the run
    load = rng.uniform(1.0, 3.0) * rng.choice([-1.0, 1.0])  # a load disturbance from half-way on
    position, velocity, integral, derivative, command = 0.0, 0.0, 0.0, 0.0, 0.0
    previous_error_d = 0.0
    measurements = [0.0] * (DELAY_STEPS + 1)
    itae = effort = chatter = 0.0
    for step in range(STEPS):
        t = step * DT
        reference = float(setpoints[min(3, 4 * step // STEPS)])
        measured = measurements[-DELAY_STEPS - 1] + float(rng.normal(0.0, NOISE_SD))
        error = reference - measured
        error_d = -measured  # derivative on the measurement: no kick at a setpoint step
        raw_derivative = (error_d - previous_error_d) / DT
        previous_error_d = error_d
        alpha = DT / (DERIVATIVE_FILTER + DT)
        derivative += alpha * (raw_derivative - derivative)
        unsaturated = (KP * (SETPOINT_WEIGHT * reference - measured) + KI * integral + KD * derivative
                       + (STIFFNESS * reference if FEEDFORWARD else 0.0))
        new_command = min(U_MAX, max(-U_MAX, unsaturated))
        saturated = new_command != unsaturated
        if ANTI_WINDUP == "clamp" and saturated and np.sign(error) == np.sign(unsaturated):
            pass  # the integrator holds while pushing further into saturation
        elif ANTI_WINDUP == "back_calculation":
            integral += DT * (error + (new_command - unsaturated) / max(KP, 1e-3))
        else:
            integral += DT * error
        chatter += abs(new_command - command)
        command = new_command
        acceleration = (command + (load if step >= STEPS // 2 else 0.0) - DAMPING * velocity - STIFFNESS * position) / MASS
        velocity += DT * acceleration
        position += DT * velocity
        measurements.append(position)
        del measurements[0]
        if not np.isfinite(position) or abs(position) > 1e3:
            raise FloatingPointError(f"the loop went unstable at t={t:.2f}s: lower KP, KI or KD")
        since_step = t - (min(3, 4 * step // STEPS) * STEPS // 4) * DT
        itae += since_step * abs(reference - position) * DT
        effort += command * command * DT
    duration = STEPS * DT
    metrics = {"cost": itae / duration + EFFORT_WEIGHT * effort / duration + CHATTER_WEIGHT * chatter / STEPS,
               "itae": itae, "effort": effort, "chatter": chatter, "steps": STEPS}
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print(f"cost {metrics['cost']:.6f} (itae {itae:.4f}, effort {effort:.2f}, chatter {chatter:.2f})")


if __name__ == "__main__":
    main()
