import struct
M=(1<<64)-1
K=0x517cc1b727220a95
class C:
    def __init__(s): s.st=0x243f6a8885a308d3; s.n=0
    def w(s,x): s.st=((((s.st<<5)|(s.st>>59))&M ^ (x&M))*K)&M
    def b(s,bs):
        s.w(len(bs))
        for i in range(0,len(bs),8):
            c=bs[i:i+8]; c=c+b'\0'*(8-len(c)); s.w(int.from_bytes(c,'little'))
    def fin(s):
        s.w(s.n); z=s.st
        z=((z^(z>>30))*0xBF58476D1CE4E5B9)&M; z=((z^(z>>27))*0x94D049BB133111EB)&M
        return z^(z>>31)
def f64(x): return struct.unpack('<Q',struct.pack('<d',x))[0]
def f32(x): return struct.unpack('<I',struct.pack('<f',x))[0]
c=C()
c.w(7); c.w(42); c.w((-5)&M); c.b(b"Ada Lovelace"); c.b(b"ada@example.com"); c.w(3)
c.w(f64(1.5)); c.w(f32(0.25)); c.w(1)
for t in [b"a",b"bc"]: c.b(t)
c.w(2)
c.b(b"k"); c.b(b"v"); c.w(1)
c.w(1); c.w(f64(1.0)); c.w(f64(2.0)); c.b("München".encode())
c.b(bytes([1,2,3])); c.n=1
print(hex(c.fin()))
