import sys
sz=[]; live=0; nxt=0; step=float(sys.argv[2]) if len(sys.argv)>2 else 10000
for line in open(sys.argv[1]):
    c=line[0]
    if c=='+': live+=sz[int(line[2:],16)]
    elif c=='-': live-=sz[int(line[2:],16)]
    elif c=='a': sz.append(int(line.split()[1],16))
    elif c=='c':
        t=int(line[2:],16)
        if t>=nxt:
            print(f"{t/1000:.0f}s live {live/1048576:.2f} MiB"); nxt=t+step
print(f"end live {live/1048576:.2f} MiB")
