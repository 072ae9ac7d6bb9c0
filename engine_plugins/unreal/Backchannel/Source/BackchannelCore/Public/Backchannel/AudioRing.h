// A single-producer, single-consumer ring of mono audio samples: an engine's audio thread writes, the client's I/O
// thread reads, and neither ever waits for the other (no lock, no allocation after construction), so a render
// callback never blocks behind socket work. Client::audio_ring hands one out per session track.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace backchannel {

class AudioRing {
  public:
    // Room for `capacity` samples (rounded up to a power of two).
    explicit AudioRing(size_t capacity) {
        size_t n = 1;
        while (n < std::max<size_t>(capacity, 2)) n <<= 1;
        buffer_.assign(n, 0.0f);
        mask_ = n - 1;
    }
    AudioRing(const AudioRing&) = delete;
    AudioRing& operator=(const AudioRing&) = delete;

    // Producer (one thread at a time). Interleaved floats, `channels` per frame, averaged to mono and appended.
    // The first call's rate (4000..192000 Hz) fixes the ring's: false, nothing written, for another. Frames that do
    // not fit (the consumer has fallen behind by the whole ring) are dropped and counted.
    bool write(const float* interleaved, size_t frames, int channels, int sample_rate) {
        if (channels <= 0 || sample_rate < 4000 || sample_rate > 192000) return false;
        int expected = 0;
        if (!rate_.compare_exchange_strong(expected, sample_rate, std::memory_order_acq_rel) &&
            expected != sample_rate)
            return false;
        const size_t head = head_.load(std::memory_order_relaxed);
        const size_t room = buffer_.size() - (head - tail_.load(std::memory_order_acquire));
        const size_t n = std::min(frames, room);
        const float scale = 1.0f / float(channels);
        for (size_t i = 0; i < n; ++i) {
            float sum = 0.0f;
            for (int c = 0; c < channels; ++c) sum += interleaved[i * size_t(channels) + size_t(c)];
            buffer_[(head + i) & mask_] = sum * scale;
        }
        head_.store(head + n, std::memory_order_release);
        if (n < frames) dropped_.fetch_add(frames - n, std::memory_order_relaxed);
        return true;
    }

    // Consumer (one thread at a time): up to `max` samples into `out`, oldest first; how many.
    size_t read(float* out, size_t max) {
        const size_t tail = tail_.load(std::memory_order_relaxed);
        const size_t n = std::min(max, head_.load(std::memory_order_acquire) - tail);
        for (size_t i = 0; i < n; ++i) out[i] = buffer_[(tail + i) & mask_];
        tail_.store(tail + n, std::memory_order_release);
        return n;
    }

    size_t available() const { return head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire); }
    size_t capacity() const { return buffer_.size(); }
    int sample_rate() const { return rate_.load(std::memory_order_acquire); }  // 0 before the first write
    uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  private:
    std::vector<float> buffer_;
    size_t mask_ = 0;
    std::atomic<size_t> head_{0};  // samples ever written (the producer's)
    std::atomic<size_t> tail_{0};  // samples ever read (the consumer's)
    std::atomic<int> rate_{0};
    std::atomic<uint64_t> dropped_{0};
};

}  // namespace backchannel
