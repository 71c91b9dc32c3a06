// Generic rules shipped with Verse: patterns that are rarely innocent in a
// download. They flag a file for a person to look at; they prove nothing.

rule Shell_Reverse_Connection
{
    meta:
        description = "a shell script that connects a shell to a remote host"
    strings:
        $dev_tcp = /\/dev\/(tcp|udp)\/[0-9A-Za-z.\-]+\/[0-9]{1,5}/
        $nc_e = /\b(nc|ncat|netcat)\b[^\n]{0,40}\s-(e|c)\s+\/bin\/(ba)?sh/
        $mkfifo = /mkfifo\s+\S+\s*;\s*(nc|ncat)\b/
    condition:
        any of them
}

rule PowerShell_Encoded_Download
{
    meta:
        description = "PowerShell that runs encoded or downloaded code"
    strings:
        $enc = /powershell(\.exe)?\s[^\n]{0,60}-(e|en|enc|encodedcommand)\s+[A-Za-z0-9+\/=]{40,}/ nocase
        $iex = /(iex|invoke-expression)\s*\(?\s*\(?\s*new-object\s+net\.webclient\)?\.downloadstring/ nocase
    condition:
        any of them
}

rule Office_Macro_AutoRun
{
    meta:
        description = "an Office document with a macro that runs when it opens"
    strings:
        $vba = "vbaProject.bin" ascii
        $auto1 = "AutoOpen" ascii nocase
        $auto2 = "Document_Open" ascii nocase
        $auto3 = "Workbook_Open" ascii nocase
        $shell = "WScript.Shell" ascii nocase
    condition:
        $vba or ((1 of ($auto*)) and $shell)
}

rule PE_Inside_Other_File
{
    meta:
        description = "a Windows executable hidden after the start of another file"
    strings:
        $dos = "This program cannot be run in DOS mode"
    condition:
        uint16(0) != 0x5A4D and $dos in (512..filesize)
}
