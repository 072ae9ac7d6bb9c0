// A small, strict msgpack codec: the subset protocol v1 uses (nil, bool, integers, floats, str, bin, array, map
// with string keys). Hand-written because Unity projects have no NuGet by default and the protocol needs little;
// strict because the bytes come from a socket: every length is checked against what is left before anything is
// allocated, nesting is bounded, strings must be valid UTF-8 and a frame must hold exactly what it says.
using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Backchannel.Link
{
    public sealed class MsgPackException : Exception
    {
        public MsgPackException(string message) : base(message) { }
    }

    public static class MsgPack
    {
        public const int MaxDepth = 32;
        public const int MaxContainer = 1 << 16;  // items in one array or map
        static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        // --- encoding -------------------------------------------------------------------------------------------

        public static byte[] Encode(object value)
        {
            var stream = new MemoryStream();
            Write(stream, value, 0);
            return stream.ToArray();
        }

        static void Write(Stream s, object value, int depth)
        {
            if (depth > MaxDepth) throw new MsgPackException("nested too deeply to encode");
            if (value == null) { s.WriteByte(0xc0); return; }
            if (value is bool) { s.WriteByte((bool)value ? (byte)0xc3 : (byte)0xc2); return; }
            if (value is int) { WriteInt(s, (int)value); return; }
            if (value is long) { WriteInt(s, (long)value); return; }
            if (value is float) { s.WriteByte(0xca); WriteBig(s, BitConverter.GetBytes((float)value)); return; }
            if (value is double) { s.WriteByte(0xcb); WriteBig(s, BitConverter.GetBytes((double)value)); return; }
            var str = value as string;
            if (str != null) { WriteString(s, str); return; }
            var bin = value as byte[];
            if (bin != null) { WriteBin(s, bin); return; }
            var map = value as IDictionary<string, object>;
            if (map != null)
            {
                WriteHeader(s, map.Count, 0x80, 0xde, 0xdf);
                foreach (var pair in map) { WriteString(s, pair.Key); Write(s, pair.Value, depth + 1); }
                return;
            }
            var list = value as IList;
            if (list != null)
            {
                WriteHeader(s, list.Count, 0x90, 0xdc, 0xdd);
                foreach (var item in list) Write(s, item, depth + 1);
                return;
            }
            throw new MsgPackException("cannot encode a " + value.GetType().Name);
        }

        static void WriteInt(Stream s, long v)
        {
            if (v >= 0 && v < 128) { s.WriteByte((byte)v); return; }
            if (v < 0 && v >= -32) { s.WriteByte((byte)(sbyte)v); return; }
            if (v >= int.MinValue && v <= int.MaxValue) { s.WriteByte(0xd2); WriteBig(s, BitConverter.GetBytes((int)v)); return; }
            s.WriteByte(0xd3); WriteBig(s, BitConverter.GetBytes(v));
        }

        static void WriteString(Stream s, string str)
        {
            var bytes = StrictUtf8.GetBytes(str);
            if (bytes.Length < 32) s.WriteByte((byte)(0xa0 | bytes.Length));
            else if (bytes.Length < 256) { s.WriteByte(0xd9); s.WriteByte((byte)bytes.Length); }
            else if (bytes.Length < 65536) { s.WriteByte(0xda); WriteBig(s, BitConverter.GetBytes((ushort)bytes.Length)); }
            else { s.WriteByte(0xdb); WriteBig(s, BitConverter.GetBytes((uint)bytes.Length)); }
            s.Write(bytes, 0, bytes.Length);
        }

        static void WriteBin(Stream s, byte[] bin)
        {
            if (bin.Length < 256) { s.WriteByte(0xc4); s.WriteByte((byte)bin.Length); }
            else if (bin.Length < 65536) { s.WriteByte(0xc5); WriteBig(s, BitConverter.GetBytes((ushort)bin.Length)); }
            else { s.WriteByte(0xc6); WriteBig(s, BitConverter.GetBytes((uint)bin.Length)); }
            s.Write(bin, 0, bin.Length);
        }

        static void WriteHeader(Stream s, int count, int fix, byte b16, byte b32)
        {
            if (count < 16) s.WriteByte((byte)(fix | count));
            else if (count < 65536) { s.WriteByte(b16); WriteBig(s, BitConverter.GetBytes((ushort)count)); }
            else { s.WriteByte(b32); WriteBig(s, BitConverter.GetBytes((uint)count)); }
        }

        static void WriteBig(Stream s, byte[] little)
        {
            if (BitConverter.IsLittleEndian) Array.Reverse(little);
            s.Write(little, 0, little.Length);
        }

        // --- decoding -------------------------------------------------------------------------------------------

        /// <summary>Exactly one object filling the whole buffer.</summary>
        public static object Decode(byte[] data)
        {
            int offset = 0;
            var value = Read(data, ref offset, data.Length, 0);
            if (offset != data.Length) throw new MsgPackException((data.Length - offset) + " bytes after the object");
            return value;
        }

        /// <summary>The next object from data[offset..end); offset moves past it.</summary>
        public static object Read(byte[] data, ref int offset, int end, int depth)
        {
            if (depth > MaxDepth) throw new MsgPackException("nested deeper than " + MaxDepth);
            byte b = Take(data, ref offset, end, 1)[0];
            if (b <= 0x7f) return (long)b;
            if (b >= 0xe0) return (long)(sbyte)b;
            if ((b & 0xe0) == 0xa0) return ReadString(data, ref offset, end, b & 0x1f);
            if ((b & 0xf0) == 0x90) return ReadArray(data, ref offset, end, b & 0x0f, depth);
            if ((b & 0xf0) == 0x80) return ReadMap(data, ref offset, end, b & 0x0f, depth);
            switch (b)
            {
                case 0xc0: return null;
                case 0xc2: return false;
                case 0xc3: return true;
                case 0xc4: return Bin(data, ref offset, end, (int)Unsigned(data, ref offset, end, 1));
                case 0xc5: return Bin(data, ref offset, end, (int)Unsigned(data, ref offset, end, 2));
                case 0xc6: return Bin(data, ref offset, end, Length(Unsigned(data, ref offset, end, 4)));
                case 0xca: return (double)BitConverter.ToSingle(Big(data, ref offset, end, 4), 0);
                case 0xcb: return BitConverter.ToDouble(Big(data, ref offset, end, 8), 0);
                case 0xcc: return (long)Unsigned(data, ref offset, end, 1);
                case 0xcd: return (long)Unsigned(data, ref offset, end, 2);
                case 0xce: return (long)Unsigned(data, ref offset, end, 4);
                case 0xcf:
                    ulong u = Unsigned(data, ref offset, end, 8);
                    if (u > long.MaxValue) throw new MsgPackException("integer beyond 2^63-1");
                    return (long)u;
                case 0xd0: return (long)(sbyte)Take(data, ref offset, end, 1)[0];
                case 0xd1: return (long)BitConverter.ToInt16(Big(data, ref offset, end, 2), 0);
                case 0xd2: return (long)BitConverter.ToInt32(Big(data, ref offset, end, 4), 0);
                case 0xd3: return BitConverter.ToInt64(Big(data, ref offset, end, 8), 0);
                case 0xd9: return ReadString(data, ref offset, end, (int)Unsigned(data, ref offset, end, 1));
                case 0xda: return ReadString(data, ref offset, end, (int)Unsigned(data, ref offset, end, 2));
                case 0xdb: return ReadString(data, ref offset, end, Length(Unsigned(data, ref offset, end, 4)));
                case 0xdc: return ReadArray(data, ref offset, end, (int)Unsigned(data, ref offset, end, 2), depth);
                case 0xdd: return ReadArray(data, ref offset, end, Length(Unsigned(data, ref offset, end, 4)), depth);
                case 0xde: return ReadMap(data, ref offset, end, (int)Unsigned(data, ref offset, end, 2), depth);
                case 0xdf: return ReadMap(data, ref offset, end, Length(Unsigned(data, ref offset, end, 4)), depth);
                default: throw new MsgPackException(string.Format("type byte 0x{0:x2} is not used by the protocol", b));
            }
        }

        static int Length(ulong n)
        {
            if (n > int.MaxValue) throw new MsgPackException("length beyond 2^31");
            return (int)n;
        }

        static byte[] Take(byte[] data, ref int offset, int end, int n)
        {
            if (n < 0 || end - offset < n) throw new MsgPackException("truncated: " + n + " bytes wanted, " + (end - offset) + " left");
            var bytes = new byte[n];
            Buffer.BlockCopy(data, offset, bytes, 0, n);
            offset += n;
            return bytes;
        }

        static byte[] Big(byte[] data, ref int offset, int end, int n)
        {
            var bytes = Take(data, ref offset, end, n);
            if (BitConverter.IsLittleEndian) Array.Reverse(bytes);
            return bytes;
        }

        static ulong Unsigned(byte[] data, ref int offset, int end, int n)
        {
            ulong v = 0;
            foreach (var b in Take(data, ref offset, end, n)) v = (v << 8) | b;
            return v;
        }

        static byte[] Bin(byte[] data, ref int offset, int end, int n) => Take(data, ref offset, end, n);

        static string ReadString(byte[] data, ref int offset, int end, int n)
        {
            if (end - offset < n) throw new MsgPackException("truncated string");
            try
            {
                var s = StrictUtf8.GetString(data, offset, n);
                offset += n;
                return s;
            }
            catch (ArgumentException) { throw new MsgPackException("a string that is not UTF-8"); }
        }

        static List<object> ReadArray(byte[] data, ref int offset, int end, int n, int depth)
        {
            // each item takes at least one byte: a header claiming more items than bytes left is refused unread
            if (n > MaxContainer || n > end - offset) throw new MsgPackException("array of " + n + " items is more than the data holds");
            var list = new List<object>(n);
            for (int i = 0; i < n; i++) list.Add(Read(data, ref offset, end, depth + 1));
            return list;
        }

        static Dictionary<string, object> ReadMap(byte[] data, ref int offset, int end, int n, int depth)
        {
            if (n > MaxContainer || 2L * n > end - offset) throw new MsgPackException("map of " + n + " entries is more than the data holds");
            var map = new Dictionary<string, object>(n);
            for (int i = 0; i < n; i++)
            {
                var key = Read(data, ref offset, end, depth + 1) as string;
                if (key == null) throw new MsgPackException("a map key that is not a string");
                map[key] = Read(data, ref offset, end, depth + 1);
            }
            return map;
        }
    }
}
