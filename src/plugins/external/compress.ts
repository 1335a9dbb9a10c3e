import fp from 'fastify-plugin'
import fastifyCompress from '@fastify/compress'
import { constants } from 'node:zlib'

/**
 * br or gzip for answers over 1 KiB when the client asks (the contract's threshold). Brotli runs
 * at quality 4: its default of 11 costs milliseconds of CPU per list page for a few percent of
 * size. Request bodies are never decompressed: a compressed body is not JSON (415/400). Every
 * answer says it varies by Accept-Encoding, so no cache hands a compressed body to a client that
 * cannot read it, whichever variant it stored first.
 */
export default fp(async function compress (fastify) {
  await fastify.register(fastifyCompress, {
    threshold: 1024,
    encodings: ['br', 'gzip'],
    globalDecompression: false,
    brotliOptions: { params: { [constants.BROTLI_PARAM_QUALITY]: 4 } }
  })
  fastify.addHook('onRequest', (_request, reply, done) => { reply.header('vary', 'accept-encoding'); done() })
}, { name: 'compress' })
