using System.Globalization;
using System.IO.Compression;

// usage: MicroLm.QualityPlot OUT.png A.tsv [B.tsv ...]
// x: bits per weight (0..17), y: mean KL divergence against F32 (log scale, 1e-6 .. 10); one colour per
// TSV file, weight presets as filled squares, the F32/F16/BF16/Q8_0 points included. Grid: every bit on
// x, every decade on y (the lines at 1e-6, 1e-5, ..., 1, 10); the thick line is KLD = 0.1.
if (args.Length < 2) { Console.Error.WriteLine("usage: MicroLm.QualityPlot OUT.png A.tsv [B.tsv ...]"); return 2; }
const int W = 900, H = 560, L = 60, R = 20, T = 20, B = 40;
var px = new byte[W * H * 3];
Array.Fill(px, (byte)255);
void Set(int x, int y, (byte r, byte g, byte b) c) { if (x < 0 || y < 0 || x >= W || y >= H) return; int i = (y * W + x) * 3; px[i] = c.r; px[i + 1] = c.g; px[i + 2] = c.b; }
void Rect(int x0, int y0, int x1, int y1, (byte, byte, byte) c) { for (int y = y0; y <= y1; y++) for (int x = x0; x <= x1; x++) Set(x, y, c); }
double X(double bpw) => L + bpw / 17.0 * (W - L - R);
double Y(double kld) => T + (1 - (System.Math.Log10(System.Math.Max(kld, 1e-6)) + 6) / 7.0) * (H - T - B);
var grid = ((byte)225, (byte)225, (byte)225);
for (int b = 0; b <= 17; b++) Rect((int)X(b), T, (int)X(b), H - B, b % 4 == 0 ? ((byte)170, (byte)170, (byte)170) : grid);
for (int e = -6; e <= 1; e++) Rect(L, (int)Y(System.Math.Pow(10, e)), W - R, (int)Y(System.Math.Pow(10, e)), grid);
Rect(L, (int)Y(0.1) - 1, W - R, (int)Y(0.1) + 1, ((byte)200, (byte)120, (byte)120));
Rect(L, T, L, H - B, (0, 0, 0)); Rect(L, H - B, W - R, H - B, (0, 0, 0));
(byte, byte, byte)[] colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)];
for (int f = 1; f < args.Length; f++)
{
    var c = colours[(f - 1) % colours.Length];
    Rect(W - R - 30, T + 10 + 18 * (f - 1), W - R - 18, T + 22 + 18 * (f - 1), c); // legend swatch, in file order
    foreach (var line in File.ReadLines(args[f]).Skip(1))
    {
        var p = line.Split('\t');
        if (p.Length < 9 || p[1] != "weights" || !double.TryParse(p[4], CultureInfo.InvariantCulture, out double bpw)
            || !double.TryParse(p[7], CultureInfo.InvariantCulture, out double kld)) continue;
        int x = (int)X(bpw), y = (int)Y(kld);
        Rect(x - 4, y - 4, x + 4, y + 4, c);
    }
}
using var png = File.Create(args[0]);
png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
void Chunk(string type, byte[] data)
{
    var len = new byte[4]; System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(len, data.Length); png.Write(len);
    var td = new byte[4 + data.Length]; System.Text.Encoding.ASCII.GetBytes(type).CopyTo(td, 0); data.CopyTo(td, 4); png.Write(td);
    var crc = new byte[4]; System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(td)); png.Write(crc);
}
var ihdr = new byte[13];
System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr, W); System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), H);
ihdr[8] = 8; ihdr[9] = 2;
Chunk("IHDR", ihdr);
using (var raw = new MemoryStream())
{
    using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
        for (int y = 0; y < H; y++) { z.WriteByte(0); z.Write(px, y * W * 3, W * 3); }
    Chunk("IDAT", raw.ToArray());
}
Chunk("IEND", []);
return 0;

static uint Crc32(byte[] data)
{
    // PNG's CRC-32 (polynomial 0xEDB88320), bitwise.
    uint c = 0xFFFFFFFFu;
    foreach (byte b in data)
    {
        c ^= b;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}
