"""Golden values for sim/src/queue/erlang.rs: the M/M/c queue's response-time p95 (wait and
service, first come first served) from the closed form, evaluated independently of the Rust code.
Run: python3 sim/golden/mmc_response.py (prints utilisation and p95 seconds for c = 4 workers
with the sim's default 104.6 ms mean service time)."""
import math
def erlang_c(c, a):
    # a = lambda/mu offered load
    s = sum(a**k/math.factorial(k) for k in range(c))
    top = a**c/math.factorial(c) * c/(c-a)
    return top/(s+top)
def p_exceed(c, mu, lam, t):
    a = lam/mu; C = erlang_c(c,a); r = c*mu-lam
    if abs(r-mu)<1e-12:
        return (1-C)*math.exp(-mu*t) + C*(1+mu*t)*math.exp(-mu*t)
    return (1-C)*math.exp(-mu*t) + C*(r*math.exp(-mu*t) - mu*math.exp(-r*t))/(r-mu)
def p95(c, mu, lam):
    lo, hi = 0, 100
    for _ in range(100):
        m=(lo+hi)/2
        if p_exceed(c,mu,lam,m) > 0.05: lo=m
        else: hi=m
    return hi
ES = 0.1*math.exp(0.3**2/2); mu=1/ES; c=4
for rho in [0.5,0.6,0.7,0.75,0.8,0.85,0.9,0.95]:
    print(rho, round(p95(c,mu,rho*c*mu),3))
