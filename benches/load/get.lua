-- W1: the client's own Authorization, which every proxy must replace.
wrk.headers["Authorization"] = "Bearer client-token"
