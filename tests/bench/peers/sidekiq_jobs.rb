# Sidekiq side of `make bench` (tests/bench/peers.py): the no-op and
# wordcount jobs, doing what jobq's built-in handlers do. Sidekiq keeps no
# results, so each job writes one, as jobq, rq, Celery and BullMQ do:
# bench:result:<jid> = {"started_at", "finished_at"[, "words", ...]} (Unix
# seconds, CLOCK_REALTIME), with a TTL. Redis: the bench's private
# redis-server (BENCH_REDIS_SOCK). Logging at warn, as jobqd's.
require "sidekiq"
require "net/http"
require "json"

Sidekiq.configure_server do |config|
  config.redis = { path: ENV.fetch("BENCH_REDIS_SOCK") }
end
Sidekiq.configure_client do |config|
  config.redis = { path: ENV.fetch("BENCH_REDIS_SOCK") }
end
Sidekiq.logger.level = Logger::WARN

module BenchResult
  def self.now
    Process.clock_gettime(Process::CLOCK_REALTIME)
  end

  def self.write(jid, doc)
    doc[:finished_at] = now
    Sidekiq.redis { |r| r.set("bench:result:#{jid}", JSON.generate(doc), ex: 3600) }
  end
end

class BenchNoop
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform
    BenchResult.write(jid, { started_at: BenchResult.now })
  end
end

class BenchWordcount
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform(url)
    t = BenchResult.now
    res = Net::HTTP.get_response(URI(url))
    body = res.body
    BenchResult.write(jid, { started_at: t, url: url, http_status: res.code.to_i, bytes: body.bytesize,
                             words: body.split.size })
  end
end
