#include "Backchannel/AudioSender.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace backchannel {

AudioTrackSender::AudioTrackSender(std::string session, std::string token, Track track, int sample_rate, Sink sink,
                                   double chunk_ms, SampleFormat format, double start_s)
    : session_(std::move(session)),
      token_(std::move(token)),
      track_(track),
      rate_(sample_rate),
      sink_(std::move(sink)),
      chunk_(std::max<size_t>(1, size_t(std::lround(sample_rate * chunk_ms / 1000.0)))),
      format_(format),
      start_s_(start_s) {
    held_.reserve(chunk_);
}

void AudioTrackSender::push(const float* samples, size_t frames, int channels) {
    channels = std::max(1, channels);
    const float scale = 1.0f / float(channels);
    for (size_t i = 0; i < frames; ++i) {
        float mono = 0;
        for (int c = 0; c < channels; ++c) mono += samples[i * size_t(channels) + size_t(c)];
        held_.push_back(channels == 1 ? mono : mono * scale);
        if (held_.size() == chunk_) emit();
    }
    samples_ += frames;
}

void AudioTrackSender::push_silence(size_t frames) {
    for (size_t i = 0; i < frames; ++i) {
        held_.push_back(0.0f);
        if (held_.size() == chunk_) emit();
    }
    samples_ += frames;
}

void AudioTrackSender::flush() {
    if (!held_.empty()) emit();
}

void AudioTrackSender::end() {
    flush();
    encode_end(message_, session_, token_);
    sink_(message_.data(), message_.size());
}

void AudioTrackSender::emit() {
    const size_t n = held_.size();
    if (format_ == SampleFormat::S16LE) {
        pcm_.resize(n * 2);
        for (size_t i = 0; i < n; ++i) {
            float x = std::isfinite(held_[i]) ? std::min(1.0f, std::max(-1.0f, held_[i])) : 0.0f;
            int16_t s = int16_t(std::lround(x * 32767.0f));
            pcm_[2 * i] = uint8_t(uint16_t(s) & 0xff);  // little-endian whatever the host
            pcm_[2 * i + 1] = uint8_t(uint16_t(s) >> 8);
        }
    } else {
        pcm_.resize(n * 4);
        for (size_t i = 0; i < n; ++i) {
            float x = std::isfinite(held_[i]) ? held_[i] : 0.0f;  // the worker refuses NaN (nan_samples)
            uint32_t u;
            std::memcpy(&u, &x, 4);
            for (int k = 0; k < 4; ++k) pcm_[4 * i + size_t(k)] = uint8_t(u >> (8 * k));
        }
    }
    const double t = start_s_ + double(sent_samples_) / rate_;
    encode_audio(message_, session_, token_, track_, seq_, t, rate_, format_, pcm_.data(), pcm_.size());
    sink_(message_.data(), message_.size());
    ++seq_;
    sent_samples_ += n;
    held_.clear();
}

}  // namespace backchannel
