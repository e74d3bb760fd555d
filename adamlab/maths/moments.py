"""The moment generating function: why Adam keeps the two averages it keeps.

For gradients g drawn from a distribution, M(t) = E[exp(t g)]. Its slope at t = 0 is the mean
E[g] and its curvature there the mean square E[g^2]:

    M(t)   = E[exp(t g)]
    M'(0)  = E[g]      what m estimates (m_hat, once bias-corrected)
    M''(0) = E[g^2]    what v estimates (v_hat)

so Adam's step m_hat / sqrt(v_hat) is the gradients' mean over their root mean square, a number
between -1 and 1 that is near +-1 when the gradients agree and near 0 when they are noise. For
the normal distribution N(mean, spread^2), M(t) = exp(mean t + spread^2 t^2 / 2), M'(0) = mean
and M''(0) = spread^2 + mean^2. The explorer draws these (printed to JavaScript from here).
"""

from .ops import exp


def normal_mgf(t, *, mean, spread):
    """M(t) of N(mean, spread^2)."""
    return exp(mean * t + spread * spread * t * t / 2)


def first_moment(*, mean, spread):
    """M'(0) = E[g]: the slope of M at 0."""
    return mean


def second_moment(*, mean, spread):
    """M''(0) = E[g^2] = spread^2 + mean^2: the curvature of M at 0."""
    return spread * spread + mean * mean
