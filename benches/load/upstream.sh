# Sourced by the load benches: the upstream every proxy is measured in
# front of, nginx + Lua (Debian's libnginx-mod-http-lua).
#   upstream_conf WORK PORT [TLS_PORT]   writes WORK/up.conf; with TLS_PORT
#     the same locations are served over https there too (ALPN h2 and
#     http/1.1, the certificate from tls_cert).
#   tls_cert WORK   writes a CA of its own (WORK/ca.pem) and a certificate
#     for 127.0.0.1 it signed (WORK/tls.pem, WORK/tls.key); needs openssl.
# It answers ~100 bytes of JSON after reading the whole request body, echoes
# the path and identity headers it got at /api/prom/echo, serves WORK/big at
# /api/prom/big and counts a streamed upload at /api/prom/upload.
tls_cert() {
  local work=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' > "$work/san.ext"
  openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -days 2 -extfile "$work/san.ext" -out "$work/tls.pem" 2>/dev/null
  # The upstream's worker runs as nobody.
  chmod 644 "$work/tls.key"
}
upstream_conf() {
  local work=$1 port=$2 tls=${3:-} listen_tls=""
  if [ -n "$tls" ]; then
    listen_tls="listen 127.0.0.1:$tls ssl http2 reuseport; ssl_certificate $work/tls.pem; ssl_certificate_key $work/tls.key;"
  fi
  cat > "$work/up.conf" <<NGX
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1; daemon off; pid $work/up.pid; error_log $work/up.err;
events { worker_connections 8192; }
http {
  access_log off; client_body_temp_path $work/up-body; client_max_body_size 0;
  client_body_buffer_size 128k; keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port reuseport; $listen_tls
    location = /api/prom/echo { content_by_lua_block {
      ngx.say(ngx.var.request_uri, " ", ngx.var.http_authorization or "-", " ", ngx.var.http_x_scope_orgid or "-") } }
    location = /api/prom/big { alias $work/big; }
    location = /api/prom/upload { content_by_lua_block {
      local sock = ngx.req.socket()
      local n = 0
      while true do
        local data, err, partial = sock:receive(65536)
        local got = data or partial
        if got then n = n + #got end
        if not data then break end
      end
      ngx.say(n) } }
    location / { content_by_lua_block {
      ngx.req.read_body()
      ngx.header["Content-Type"] = "application/json"
      ngx.say('{"status":"success","data":{"resultType":"vector","result":[]},"pad":"0123456789abcdef"}') } }
  }
}
NGX
}
