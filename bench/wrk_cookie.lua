-- GET the URL with an operator's console session (the scenario logs in first): BENCH_COOKIE.
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
