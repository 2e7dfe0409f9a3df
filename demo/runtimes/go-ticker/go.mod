module goticker

go 1.19
