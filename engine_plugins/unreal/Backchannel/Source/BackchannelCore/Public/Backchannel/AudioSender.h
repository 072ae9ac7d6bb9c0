// One track of one session cut into protocol v1 chunks. Its clock is the audio itself: a chunk's `t` is the number
// of samples sent before it divided by the rate, never wall time, so a game that stalls or renders audio ahead
// still places every sample where it belongs.
#pragma once

#include "Backchannel/Protocol.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace backchannel {

class AudioTrackSender {
  public:
    // Called once per finished message (a chunk, or `end`); the bytes are valid during the call only.
    using Sink = std::function<void(const uint8_t* data, size_t size)>;

    // `start_s`: the audio time of the first sample (0 for a new session; a client taking over a session
    // mid-stream passes where it stands). Any rate the worker takes (4000..192000 Hz); no resampling here.
    AudioTrackSender(std::string session, std::string token, Track track, int sample_rate, Sink sink,
                     double chunk_ms = 20.0, SampleFormat format = SampleFormat::S16LE, double start_s = 0.0);

    // Interleaved float samples (-1..1), `channels` per frame, mixed to mono by averaging. Sends every chunk
    // completed.
    void push(const float* samples, size_t frames, int channels = 1);
    // Silence: what a track sends while nobody speaks, so frames keep flowing.
    void push_silence(size_t frames);
    // The samples held in an unfinished chunk go out as a shorter chunk.
    void flush();
    // flush(), then the session's `end` message.
    void end();

    double time_s() const { return start_s_ + double(samples_) / rate_; }  // audio time of the next sample
    uint64_t samples() const { return samples_; }  // accepted so far (sent or held)
    int64_t next_seq() const { return seq_; }
    int sample_rate() const { return rate_; }
    size_t chunk_samples() const { return chunk_; }
    Track track() const { return track_; }

  private:
    void emit();
    std::string session_, token_;
    Track track_;
    int rate_;
    Sink sink_;
    size_t chunk_;
    SampleFormat format_;
    double start_s_;
    uint64_t samples_ = 0;  // accepted, including those held in `held_`
    uint64_t sent_samples_ = 0;
    int64_t seq_ = 0;
    std::vector<float> held_;  // the unfinished chunk
    std::vector<uint8_t> pcm_, message_;  // reused buffers
};

}  // namespace backchannel
