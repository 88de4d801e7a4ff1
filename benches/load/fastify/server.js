// The seed's Node service, as configured there: one @fastify/http-proxy
// per prefix, rewritePrefix to /api/prom, Basic auth and X-Scope-OrgID set
// in rewriteRequestHeaders, bodies passed through.
const fastify = require('fastify')({ logger: false, bodyLimit: 2 * 1024 * 1024 * 1024 });
const upstream = process.env.UPSTREAM;
const auth = 'Basic ' + Buffer.from(`${process.env.USER_ID}:${process.env.TOKEN}`).toString('base64');
const rewriteRequestHeaders = (req, headers) => {
  const h = { ...headers, authorization: auth, 'x-scope-orgid': process.env.USER_ID };
  return h;
};
// Pass bodies through unparsed.
fastify.removeAllContentTypeParsers();
fastify.addContentTypeParser('*', (req, payload, done) => done(null, payload));
for (const [prefix, rewritePrefix] of [['/prometheus', '/api/prom'], ['/api/prom', '/api/prom']]) {
  fastify.register(require('@fastify/http-proxy'), {
    upstream, prefix, rewritePrefix, http: { agentOptions: { keepAlive: true } },
    replyOptions: { rewriteRequestHeaders },
  });
}
fastify.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
