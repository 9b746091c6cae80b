"""Monte Carlo pricing of a batch of European call options, with confidence intervals.

Each option (spot, strike, volatility, maturity) is priced by simulating the stock at
maturity under the Black-Scholes model, S_T = S_0 exp((r - sigma^2/2) T + sigma sqrt(T) Z)
for standard normal Z, and averaging the discounted payoff max(S_T - K, 0). The function
prices ONE option from its own key; vmapc.compile batches it over the options, and
``randomness="different"`` gives each option its own stream from one shared key (option i
draws from ``vmapc.random.fold_in(key, i)``). The closed-form Black-Scholes price checks the
answer: it must fall inside the 99.9% confidence interval of (almost) every estimate, and
inside the 95% one for about 95% of them.

Run:  python examples/monte_carlo_options.py
"""

import math

import numpy as np

import vmapc
import vmapc.random as vr

RATE = 0.03          # the risk-free rate
PATHS = 20_000       # simulated prices per option


def price(spot, strike, vol, maturity, key):
    """Monte Carlo price of one call option and its standard error."""
    z = vr.normal(key, (PATHS,))
    drift = (RATE - 0.5 * vol * vol) * maturity
    s_t = spot * np.exp(drift + vol * np.sqrt(maturity) * z)
    payoff = np.exp(-RATE * maturity) * np.maximum(s_t - strike, 0.0)
    mean = payoff.mean()
    stderr = np.sqrt(((payoff - mean) ** 2).sum() / (PATHS - 1) / PATHS)
    return mean, stderr


def black_scholes(spot, strike, vol, maturity):
    cdf = np.vectorize(lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2))))
    d1 = (np.log(spot / strike) + (RATE + 0.5 * vol ** 2) * maturity) / (vol * np.sqrt(maturity))
    d2 = d1 - vol * np.sqrt(maturity)
    return spot * cdf(d1) - strike * np.exp(-RATE * maturity) * cdf(d2)


def main():
    rng = np.random.default_rng(7)       # the option book (data, not the simulation's noise)
    n = 200
    spot = rng.uniform(80, 120, n).astype(np.float32)
    strike = rng.uniform(80, 120, n).astype(np.float32)
    vol = rng.uniform(0.1, 0.5, n).astype(np.float32)
    maturity = rng.uniform(0.25, 2.0, n).astype(np.float32)
    key = vr.key(2024)

    batched = vmapc.compile(price, in_dims=(0, 0, 0, 0, None), randomness="different")
    mc, se = batched(spot, strike, vol, maturity, key)
    exact = black_scholes(spot.astype(np.float64), strike, vol, maturity)

    # an option so far out of the money that no path pays has a zero estimate and error
    ok = se > 0
    assert np.all(exact[~ok] < 1e-3)
    z = np.abs(mc - exact)[ok] / se[ok]
    inside95 = np.mean(z < 1.96)
    print(f"{n} options, {PATHS} paths each: mean |MC - Black-Scholes| = {np.mean(np.abs(mc - exact)):.4f}, "
          f"mean standard error = {se.mean():.4f}")
    print(f"closed form inside the 95% interval for {inside95:.0%} of the options, "
          f"inside the 99.9% interval for {np.mean(z < 3.29):.1%}")
    assert 0.88 < inside95 < 0.99, inside95
    assert np.mean(z < 3.29) >= 0.99 and z.max() < 4.5

    # The same draws as a loop that gives option i the key fold_in(key, i)
    i = 17
    one = vmapc.compile(price)(spot[i], strike[i], vol[i], maturity[i], vr.fold_in(key, i))
    assert np.allclose(one[0], mc[i], rtol=1e-5) and np.allclose(one[1], se[i], rtol=1e-4)
    print("OK")


if __name__ == "__main__":
    main()
