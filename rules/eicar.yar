// The EICAR anti-malware test file: harmless, and recognised by every scanner.
rule EICAR_Test_File
{
    meta:
        description = "EICAR anti-malware test file"
        reference = "https://www.eicar.org/download-anti-malware-testfile/"
    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        $eicar in (0..128)
}
